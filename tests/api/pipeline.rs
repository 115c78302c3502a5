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

/// A stopped instance neither goes on processing nor keeps contacts leased: the next
/// instance on the database takes over at once, not after the lease (on SQLite a contact with
/// more messages keeps its lease between batches; a processor left running after the stop
/// went on beside the next instance and handed it rows it waited the lease out for).
#[tokio::test]
async fn a_stopped_instance_processes_nothing_more_and_holds_no_contact() {
    for backend in backends() {
        let mut app = spawn_app(&backend).await;
        let ts = now_secs();
        // Enough that the stop comes with work left (asserted below, so this cannot pass idly).
        let (contacts, per_contact) = (20, 25);
        let messages: Vec<_> = (0..contacts)
            .flat_map(|c| {
                (0..per_contact).map(move |i| {
                    let phone = format!("9198000004{c:02}");
                    text_message(&phone, &new_wamid(), ts + i, &format!("s{c}-{i}"))
                })
            })
            .collect();
        assert_eq!(app.post_webhook(&envelope(messages)).await.status(), 200);
        app.shutdown().await;
        let processed = "SELECT COUNT(*) AS n FROM inbound_messages WHERE processed_at IS NOT NULL";
        let at_stop = count(&app.db, processed).await;
        assert!(
            at_stop < contacts * per_contact,
            "all {at_stop} messages were processed before the stop: nothing was tested"
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) AS n FROM contacts WHERE lease_owner IS NOT NULL"
            )
            .await,
            0,
            "contacts still leased by the stopped instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(
            count(&app.db, processed).await,
            at_stop,
            "processed after the stop"
        );
    }
}

async fn count(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("count query")
        .expect("a row");
    row.try_get("", "n").expect("n")
}
