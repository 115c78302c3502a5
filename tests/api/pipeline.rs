//! The processing pipeline: one message at a time per contact, in timestamp order, contacts
//! independent of each other, nothing lost across a restart.

use std::collections::BTreeMap;

use crate::helpers::*;

#[tokio::test]
async fn messages_of_one_contact_are_answered_in_timestamp_order() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ts = now_secs();
        let phone = "919800000101";
        // WhatsApp may batch or reorder; the pipeline orders by the message timestamp.
        let order = [3, 0, 5, 1, 4, 2];
        let messages = order
            .iter()
            .map(|i| text_message(phone, &new_wamid(), ts + i, &format!("m{i}")))
            .collect();
        assert_eq!(app.post_webhook(&envelope(messages)).await.status(), 200);
        let sent = app.wait_for_sends(6).await;
        let texts: Vec<String> = sent.iter().map(text_of).collect();
        assert_eq!(
            texts,
            [
                "echo: m0", "echo: m1", "echo: m2", "echo: m3", "echo: m4", "echo: m5"
            ]
        );
    }
}

#[tokio::test]
async fn interleaved_contacts_each_keep_their_order_and_get_one_reply_per_message() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ts = now_secs();
        let contacts: Vec<String> = (0..5).map(|c| format!("91980000020{c}")).collect();
        let per_contact = 10;
        futures::future::join_all(contacts.iter().map(|phone| {
            let app = &app;
            async move {
                for i in 0..per_contact {
                    let body = envelope(vec![text_message(
                        phone,
                        &new_wamid(),
                        ts + i,
                        &format!("{phone}-{i}"),
                    )]);
                    assert_eq!(app.post_webhook(&body).await.status(), 200);
                }
            }
        }))
        .await;
        let total = contacts.len() * per_contact as usize;
        let sent = app.wait_for_sends(total).await;
        app.assert_no_more_sends(total).await;
        let mut by_contact: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for request in &sent {
            by_contact
                .entry(recipient_of(request))
                .or_default()
                .push(text_of(request));
        }
        for phone in &contacts {
            let expected: Vec<String> = (0..per_contact)
                .map(|i| format!("echo: {phone}-{i}"))
                .collect();
            assert_eq!(by_contact[phone], expected, "order for {phone}");
        }
    }
}

#[tokio::test]
async fn a_restart_in_the_middle_loses_nothing_and_repeats_nothing() {
    for backend in backends() {
        let mut app = spawn_app(&backend).await;
        let ts = now_secs();
        let mut expected = Vec::new();
        for c in 0..4 {
            let phone = format!("91980000030{c}");
            let messages: Vec<_> = (0..6)
                .map(|i| {
                    expected.push(format!("echo: r{c}-{i}"));
                    text_message(&phone, &new_wamid(), ts + i, &format!("r{c}-{i}"))
                })
                .collect();
            assert_eq!(app.post_webhook(&envelope(messages)).await.status(), 200);
        }
        // Stop at once: some messages are still pending, some replies still queued.
        app.restart().await;
        let sent = app.wait_for_sends(expected.len()).await;
        app.assert_no_more_sends(expected.len()).await;
        let mut texts: Vec<String> = sent.iter().map(text_of).collect();
        texts.sort();
        expected.sort();
        assert_eq!(texts, expected);
    }
}
