//! The console's campaign pages over real HTTP: agents see progress and results, supervisors
//! start, pause, resume and cancel through the forms (CSRF included), refused transitions say
//! why and change nothing, unknown campaigns are a 404 page, and the results show delivered,
//! read, failed and skipped by reason without a phone number in sight.

use chrono::Utc;
use insurebot::http::console::auth::Role;
use insurebot::reminders::campaign_report;
use insurebot::reminders::campaigns;
use insurebot::store::entities::campaign::State as CampaignState;
use insurebot::store::entities::{campaign_recipient, consent_log};
use insurebot::whatsapp::fake::{FailureRule, ScriptedError};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::console::{AgentClient, add_agent, login};
use crate::helpers::*;
use crate::reminders::{
    campaign_app, campaign_sends, create_campaign, create_campaign_without_opt_in,
    opt_in_recipients, wait_until,
};

async fn html(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// The number in `<span class="n" id="{id}">N</span>` of a campaign page.
fn count(html: &str, id: &str) -> u64 {
    let marker = format!("id=\"{id}\">");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in {html}"))
        + marker.len();
    html[at..]
        .split('<')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{id} is not a number in {html}"))
}

fn form_for(id: i64, action: &str) -> String {
    format!("action=\"/console/campaigns/{id}/{action}\"")
}

async fn act(who: &AgentClient, id: i64, action: &str) -> reqwest::Response {
    who.post(
        &format!("/console/campaigns/{id}/{action}"),
        &[("csrf", &who.csrf)],
    )
    .await
}

async fn state_of(app: &TestApp, id: i64) -> CampaignState {
    campaign_report(&app.db, id).await.unwrap().state
}

#[tokio::test]
async fn agents_see_campaigns_and_their_progress_but_only_supervisors_get_buttons_and_may_act() {
    for backend in backends() {
        let app = campaign_app(&backend).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        add_agent(&app, "sup@example.com", Role::Supervisor).await;
        let id = create_campaign(&app, 5, "91975", 50).await;

        let agent = login(&app, "asha@example.com").await;
        let (status, list) = html(agent.get("/console/campaigns").await).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            list.contains(&format!("href=\"/console/campaigns/{id}\"")),
            "{list}"
        );
        assert!(
            list.contains("renewal offer") && list.contains("policy_offer"),
            "{list}"
        );
        assert!(
            list.contains("state-draft") && list.contains("0 / 5 (0%)"),
            "{list}"
        );
        let (status, page) = html(agent.get(&format!("/console/campaigns/{id}")).await).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("0 of 5 recipients decided"), "{page}");
        assert!(
            page.contains("aria-current=\"page\">Campaigns"),
            "the nav link: {page}"
        );
        assert!(!page.contains(&form_for(id, "start")), "{page}");
        assert!(!page.contains(&form_for(id, "cancel")), "{page}");

        let refused = act(&agent, id, "start").await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(state_of(&app, id).await, CampaignState::Draft);

        let supervisor = login(&app, "sup@example.com").await;
        let (_, page) = html(supervisor.get(&format!("/console/campaigns/{id}")).await).await;
        assert!(page.contains(&form_for(id, "start")), "{page}");
        assert!(page.contains("Start sending to 5 recipients"), "{page}");
        assert!(page.contains(&form_for(id, "cancel")), "{page}");
        assert!(!page.contains(&form_for(id, "pause")), "{page}");
    }
}

#[tokio::test]
async fn a_supervisor_starts_pauses_resumes_and_cancels_through_the_forms_and_the_page_follows() {
    for backend in backends() {
        let app = campaign_app(&backend).await;
        add_agent(&app, "sup@example.com", Role::Supervisor).await;
        let id = create_campaign(&app, 40, "91976", 5).await;
        let supervisor = login(&app, "sup@example.com").await;
        let path = format!("/console/campaigns/{id}");

        // A form without the session's token is refused and changes nothing.
        let forged = supervisor
            .post(&format!("{path}/start"), &[("csrf", "forged")])
            .await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert_eq!(state_of(&app, id).await, CampaignState::Draft);

        let started = act(&supervisor, id, "start").await;
        assert_eq!(started.status(), StatusCode::SEE_OTHER);
        assert_eq!(started.headers()[LOCATION], path.as_str());
        assert_eq!(state_of(&app, id).await, CampaignState::Running);
        let (_, page) = html(supervisor.get(&path).await).await;
        assert!(page.contains("state-running"), "{page}");
        assert!(page.contains(&form_for(id, "pause")), "{page}");
        assert!(!page.contains(&form_for(id, "start")), "{page}");

        // The fragment the page refreshes itself with shows the sends as they happen.
        wait_until("a send", async || !campaign_sends(&app).is_empty()).await;
        wait_until("a send in the fragment", async || {
            let (status, live) = html(supervisor.get(&format!("{path}/live")).await).await;
            assert_eq!(status, StatusCode::OK);
            assert!(!live.contains("<html"), "a fragment, not a page: {live}");
            count(&live, "count-sent") >= 1
        })
        .await;

        assert_eq!(
            act(&supervisor, id, "pause").await.status(),
            StatusCode::SEE_OTHER
        );
        assert_eq!(state_of(&app, id).await, CampaignState::Paused);
        let (_, page) = html(supervisor.get(&path).await).await;
        assert!(page.contains("state-paused"), "{page}");
        assert!(page.contains(&form_for(id, "resume")), "{page}");
        assert!(!page.contains(&form_for(id, "pause")), "{page}");

        assert_eq!(
            act(&supervisor, id, "resume").await.status(),
            StatusCode::SEE_OTHER
        );
        assert_eq!(state_of(&app, id).await, CampaignState::Running);

        assert_eq!(
            act(&supervisor, id, "cancel").await.status(),
            StatusCode::SEE_OTHER
        );
        let report = campaign_report(&app.db, id).await.unwrap();
        assert_eq!(
            (report.state, report.pending),
            (CampaignState::Cancelled, 0)
        );
        let (_, page) = html(supervisor.get(&path).await).await;
        assert!(page.contains("state-cancelled"), "{page}");
        for action in ["start", "pause", "resume", "cancel"] {
            assert!(!page.contains(&form_for(id, action)), "{action}: {page}");
        }
        assert!(page.contains("<code>cancelled</code>"), "{page}");
    }
}

#[tokio::test]
async fn a_transition_the_state_does_not_allow_says_why_and_changes_nothing() {
    for backend in backends() {
        let app = campaign_app(&backend).await;
        add_agent(&app, "admin@example.com", Role::Admin).await;
        let admin = login(&app, "admin@example.com").await;

        let cancelled = create_campaign(&app, 3, "91977", 50).await;
        campaigns::cancel(&app.db, cancelled, Utc::now())
            .await
            .unwrap();
        let before = campaign_report(&app.db, cancelled).await.unwrap();
        let (status, page) = html(act(&admin, cancelled, "resume").await).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            page.contains("This campaign is cancelled, so it cannot be resumed.")
                && page.contains("Only a paused campaign can be resumed.")
                && page.contains("Nothing was changed."),
            "{page}"
        );
        assert!(page.contains("role=\"alert\""), "{page}");
        assert_eq!(campaign_report(&app.db, cancelled).await.unwrap(), before);

        let draft = create_campaign(&app, 3, "91978", 50).await;
        let (status, page) = html(act(&admin, draft, "pause").await).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(page.contains("is draft, so it cannot be paused"), "{page}");
        assert_eq!(state_of(&app, draft).await, CampaignState::Draft);

        assert_eq!(
            act(&admin, draft, "start").await.status(),
            StatusCode::SEE_OTHER
        );
        let (status, page) = html(act(&admin, draft, "start").await).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(page.contains("cannot be started"), "{page}");
    }
}

#[tokio::test]
async fn an_unknown_campaign_or_action_is_a_404_page() {
    for backend in backends() {
        let app = campaign_app(&backend).await;
        add_agent(&app, "sup@example.com", Role::Supervisor).await;
        let id = create_campaign(&app, 2, "91979", 50).await;

        let anonymous = app.get("/console/campaigns").await;
        assert_eq!(
            anonymous.url().path(),
            "/console/login",
            "redirected to log in"
        );

        let supervisor = login(&app, "sup@example.com").await;
        for path in [
            "/console/campaigns/999999".to_owned(),
            "/console/campaigns/not-a-number".to_owned(),
            "/console/campaigns/999999/live".to_owned(),
        ] {
            let (status, page) = html(supervisor.get(&path).await).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(
                page.contains("<h1>404</h1>") && page.contains("not found"),
                "{page}"
            );
        }
        assert_eq!(
            act(&supervisor, 999_999, "pause").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            act(&supervisor, id, "explode").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(state_of(&app, id).await, CampaignState::Draft);
    }
}

#[tokio::test]
async fn the_results_show_delivered_read_failed_and_skipped_by_reason_and_no_phone_number() {
    for backend in backends() {
        let app = campaign_app(&backend).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        // Four recipients opted in; a fifth, added to the audience later, did not.
        let id = create_campaign_without_opt_in(&app, 5, "91980", 50).await;
        let last = campaign_recipient::Entity::find()
            .filter(campaign_recipient::Column::CampaignId.eq(id))
            .all(&app.db)
            .await
            .unwrap()
            .pop()
            .unwrap();
        opt_in_recipients(&app.db, id).await;
        consent_log::Entity::delete_many()
            .filter(consent_log::Column::ContactId.eq(last.contact_id))
            .exec(&app.db)
            .await
            .unwrap();
        // The Cloud API refuses the first send for good.
        app.fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(400, 131026),
        });
        campaigns::start(&app.db, id, Utc::now()).await.unwrap();
        wait_until("three accepted sends", async || {
            campaign_report(&app.db, id).await.unwrap().sent == 3
        })
        .await;

        // Meta reports one delivered, one read, one failed (ecosystem limit).
        let wamids: Vec<String> = app
            .sent_messages()
            .iter()
            .filter_map(|r| r.wamid.clone())
            .collect();
        assert_eq!(wamids.len(), 3);
        let mut failed = status(&wamids[2], "failed", now_secs());
        failed["errors"] = json!([{ "code": 131049, "title": "This message was not delivered to maintain healthy ecosystem engagement." }]);
        app.post_webhook(&status_envelope(vec![
            status(&wamids[0], "delivered", now_secs()),
            status(&wamids[1], "read", now_secs()),
            failed,
        ]))
        .await;
        wait_until("statuses counted", async || {
            let r = campaign_report(&app.db, id).await.unwrap();
            r.read == 1 && r.failed.len() == 2
        })
        .await;

        let agent = login(&app, "asha@example.com").await;
        let (status, page) = html(agent.get(&format!("/console/campaigns/{id}")).await).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("5 of 5 recipients decided (100%)"), "{page}");
        assert_eq!(count(&page, "count-sent"), 2, "{page}");
        assert_eq!(
            count(&page, "count-delivered"),
            2,
            "read counts as delivered: {page}"
        );
        assert_eq!(count(&page, "count-read"), 1, "{page}");
        assert_eq!(count(&page, "count-failed"), 2, "{page}");
        assert_eq!(count(&page, "count-skipped"), 1, "{page}");
        assert!(
            page.contains("<code>undeliverable</code> not deliverable"),
            "{page}"
        );
        assert!(
            page.contains("<code>131049</code> held back by Meta"),
            "{page}"
        );
        assert!(
            page.contains("<code>consent_no_marketing_opt_in</code> no marketing opt-in"),
            "{page}"
        );
        let (_, list) = html(agent.get("/console/campaigns").await).await;
        assert!(list.contains("5 / 5 (100%)"), "{list}");
        for html in [&page, &list] {
            assert!(!html.contains("91980"), "a phone number is shown: {html}");
        }
    }
}
