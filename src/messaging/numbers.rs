//! The business numbers this deployment sends from, each a [`Line`]: its own Cloud API client
//! (requests go to `/{phone_number_id}/messages`) and its own pacing (per-recipient pairs,
//! and the number's rate, shared with other instances under the number's key when the rate
//! is shared). The sender sends each outbox row on the line of the row's number, so a reply
//! leaves from the number the policyholder wrote to and each number's rate holds on its own.

use std::collections::HashMap;
use std::sync::Arc;

use super::pacing::Pacing;
use crate::whatsapp::client::CloudApiClient;

/// One business number's client and limiters.
pub struct Line {
    pub client: Arc<CloudApiClient>,
    pub pacing: Arc<Pacing>,
}

impl Line {
    /// The number's phone number id.
    pub fn number(&self) -> &str {
        self.client.phone_number_id()
    }
}

/// Every line, the first being the deployment's default. Cheap to clone.
#[derive(Clone)]
pub struct Lines {
    /// In configuration order; never empty.
    all: Arc<Vec<Arc<Line>>>,
    by_number: Arc<HashMap<String, Arc<Line>>>,
}

impl Lines {
    /// # Panics
    /// When `lines` is empty (the settings always name at least one number).
    pub fn new(lines: Vec<Line>) -> Self {
        assert!(!lines.is_empty(), "at least one business number");
        let all: Vec<Arc<Line>> = lines.into_iter().map(Arc::new).collect();
        let by_number = all
            .iter()
            .map(|line| (line.number().to_owned(), line.clone()))
            .collect();
        Lines {
            all: Arc::new(all),
            by_number: Arc::new(by_number),
        }
    }

    /// The line of `number`; `None` (a row naming none): the first. `Err` names a number
    /// that is not configured (any more): its rows are not sent from another number.
    ///
    /// # Errors
    /// The unknown number.
    pub fn of<'a>(&self, number: Option<&'a str>) -> Result<&Arc<Line>, &'a str> {
        match number {
            None => Ok(&self.all[0]),
            Some(n) => self.by_number.get(n).ok_or(n),
        }
    }

    /// The deployment's first line.
    pub fn first(&self) -> &Arc<Line> {
        &self.all[0]
    }

    /// Every line, the first first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Line>> {
        self.all.iter()
    }

    /// The rates of every number together: what the sender may send per second in all.
    pub fn total_rate(&self) -> u32 {
        self.all.iter().map(|l| l.pacing.rate()).sum()
    }
}
