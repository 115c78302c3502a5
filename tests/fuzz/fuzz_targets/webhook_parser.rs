//! Any bytes as a webhook body: the parser answers Ok or a clear error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = insurebot::whatsapp::inbound::parse_webhook(data) {
        // What was parsed must serialise again (it is stored as JSON).
        for message in &events.messages {
            let _ = serde_json_roundtrip(&message.content);
            let _ = message.content.type_name();
        }
    }
});

fn serde_json_roundtrip<T: serde::Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value).ok()
}
