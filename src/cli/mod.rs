//! The command line's commands beyond `serve`, each in its own file; `main` parses the
//! arguments and calls them.
//!
//! - [`agent`]: `insurebot agent add`, console users.
//! - [`reminders`]: `insurebot campaigns …` and `insurebot reminders run`.

pub mod agent;
pub mod reminders;
