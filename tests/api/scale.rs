//! Several instances on one PostgreSQL database: messages of one contact are processed one at a
//! time and in order even when their webhooks land on different instances; the outbox is
//! shared with leases, so no reply goes twice; a contact another instance is processing (its
//! advisory lock held) waits for it. (PostgreSQL only: that is the scale-out setup.)

use std::collections::BTreeMap;

use crate::helpers::*;

#[needs_postgres]
#[tokio::test]
async fn two_instances_share_the_work_without_duplicates_or_reordering() {
    let backend = postgres_only();
    let app = spawn_app(&backend).await;
    let mut peer = app.start_peer().await;
    let instances = [app.address.clone(), peer.address.clone()];
    let ts = now_secs();
    let contacts: Vec<String> = (0..6).map(|c| format!("91980000070{c}")).collect();
    let per_contact = 12;
    futures::future::join_all(contacts.iter().enumerate().map(|(c, phone)| {
        let app = &app;
        let instances = &instances;
        async move {
            for i in 0..per_contact {
                // Alternate instances per message, offset per contact, like a load balancer.
                let target = &instances[(c + i as usize) % 2];
                let wamid = new_wamid();
                let body = envelope(vec![text_message(
                    phone,
                    &wamid,
                    ts + i,
                    &format!("{phone}-{i}"),
                )]);
                assert_eq!(app.post_webhook_to(target, &body).await.status(), 200);
                // Meta redelivers too: the same webhook to the other instance changes nothing.
                if i % 4 == 0 {
                    let other = &instances[(c + i as usize + 1) % 2];
                    assert_eq!(app.post_webhook_to(other, &body).await.status(), 200);
                }
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
        assert_eq!(
            by_contact[phone], expected,
            "one reply per message, in order, for {phone}"
        );
    }
    println!(
        "two instances: {total} messages, {} replies, 0 duplicates",
        sent.len()
    );
    peer.shutdown().await;
}

#[needs_postgres]
#[tokio::test]
async fn a_contact_another_instance_is_processing_waits_for_it_and_is_then_answered_once() {
    use insurebot::store::entities::contact;
    use sea_orm::{ConnectionTrait, EntityTrait, Statement, TransactionTrait};
    let backend = postgres_only();
    let app = spawn_app(&backend).await;
    let phone = "919800000801";
    let ts = now_secs();
    let first = envelope(vec![text_message(phone, &new_wamid(), ts, "first")]);
    assert_eq!(app.post_webhook(&first).await.status(), 200);
    app.wait_for_sends(1).await;
    let contact = contact::Entity::find().one(&app.db).await.unwrap().unwrap();

    // Another instance's batch holds the contact: the same advisory lock, in its transaction.
    // The pipeline may hold it for a moment after the first reply (a turn it was notified of
    // meanwhile finds nothing to do), so the test tries again until it has it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let other = loop {
        let other = app.db.begin().await.unwrap();
        let held: bool = other
            .query_one_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock(6919, ($1 % 2147483647)::int4) AS held",
                [contact.id.into()],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "held")
            .unwrap();
        if held {
            break other;
        }
        other.rollback().await.unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "the test takes the contact's lock within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let second = envelope(vec![text_message(phone, &new_wamid(), ts + 1, "second")]);
    assert_eq!(app.post_webhook(&second).await.status(), 200);
    // Longer than a sweep (1 s): the pipeline keeps skipping the contact while it is held.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(app.sent_messages().len(), 1, "not processed while held");

    other.commit().await.unwrap();
    let sent = app.wait_for_sends(2).await;
    app.assert_no_more_sends(2).await;
    assert_eq!(text_of(&sent[1]), "echo: second");
}
