//! The console's flow pages (issue 23): each flow drawn from the running flow set, with the
//! live numbers of the last 14 days on it; supervisors and admins only; no script, so the
//! console's CSP holds. And every flow of the 200-flow linter benchmark set draws.

use insurebot::config::DialogueMode;
use insurebot::http::console::auth::Role;
use insurebot::store::entities::conversation;
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};

use crate::console::{add_agent, login};
use crate::helpers::*;

#[path = "../support/bench_flows.rs"]
mod bench_flows;

#[tokio::test]
async fn an_agent_cannot_open_the_flow_pages_and_a_supervisor_sees_every_flow() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| s.dialogue.handler = DialogueMode::Flows).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        add_agent(&app, "sup@example.com", Role::Supervisor).await;
        let agent = login(&app, "asha@example.com").await;
        for path in ["/console/flows", "/console/flows/claim_status"] {
            let refused = agent.get(path).await;
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
            assert!(!refused.text().await.unwrap().contains("<svg"));
        }
        let supervisor = login(&app, "sup@example.com").await;
        let list = supervisor.get("/console/flows").await.text().await.unwrap();
        for f in ["menu", "claim_status", "premium_due", "identity", "opt_out"] {
            assert!(
                list.contains(&format!("href=\"/console/flows/{f}\"")),
                "{f}: {list}"
            );
        }
        let missing = supervisor.get("/console/flows/no_such_flow").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let page = supervisor.get("/console/flows/claim_status").await;
        assert_eq!(page.status(), StatusCode::OK);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let html = page.text().await.unwrap();
        assert!(
            html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"flow-graph\""),
            "{html}"
        );
        for banned in ["<script", "<style", "style="] {
            assert!(!html.contains(banned), "{banned} in {html}");
        }
    }
}

/// Each of `phones` says "claim" and gets its answer. None is on a policy, so each is asked
/// for a policy number by the identity flow that claim_status calls.
pub async fn ask_for_claims(app: &TestApp, phones: &[&str]) {
    for phone in phones {
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            now_secs(),
            "claim",
        )]))
        .await;
    }
    app.wait_for_sends(phones.len()).await;
}

/// The funnel row of `state` in a flow page's table.
fn row<'a>(html: &'a str, state: &str) -> &'a str {
    let start = html
        .find(&format!("<th scope=\"row\">{state}</th>"))
        .unwrap_or_else(|| panic!("no row for {state}: {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</tr>").unwrap()]
}

#[tokio::test]
async fn a_flow_page_counts_who_entered_each_state_took_each_edge_and_gave_up() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| s.dialogue.handler = DialogueMode::Flows).await;
        add_agent(&app, "sup@example.com", Role::Supervisor).await;
        ask_for_claims(&app, &["919800002301", "919800002302"]).await;
        let supervisor = login(&app, "sup@example.com").await;
        let html = supervisor
            .get("/console/flows/claim_status")
            .await
            .text()
            .await
            .unwrap();
        assert!(html.contains("2 conversations started it"), "{html}");
        let verify = row(&html, "verify");
        assert!(verify.contains("<td>2</td>"), "{verify}");
        assert!(verify.contains("call → flow identity: 2"), "{verify}");
        assert!(
            html.contains("entered 2"),
            "the numbers are on the diagram: {html}"
        );

        // One of them walks away: idle past the restart, still held by the bot.
        let rows = conversation::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(rows.len(), 2);
        let idle = rows[0].clone();
        let (flow, state) = (idle.flow.clone().unwrap(), idle.flow_state.clone().unwrap());
        let mut stale: conversation::ActiveModel = idle.into();
        stale.updated_at = Set(insurebot::store::now_ms() - 2 * 3_600_000);
        stale.update(&app.db).await.unwrap();
        let html = supervisor
            .get(&format!("/console/flows/{flow}"))
            .await
            .text()
            .await
            .unwrap();
        let gave_up = row(&html, &state);
        // entered 2, gave up 1.
        assert!(gave_up.contains("<td>2</td><td>1</td>"), "{gave_up}");
        assert!(html.contains("gave up 1"), "{html}");

        // The texts follow ?lang=.
        let hindi = supervisor
            .get("/console/flows/claim_status?lang=hi")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            hindi.contains("<strong aria-current=\"true\">hi</strong>"),
            "{hindi}"
        );
        assert!(
            hindi
                .chars()
                .any(|c| ('\u{0900}'..='\u{097F}').contains(&c)),
            "Devanagari on the diagram"
        );
    }
}

#[test]
fn every_flow_of_the_200_flow_benchmark_set_draws_as_svg() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    bench_flows::write(root, &flows);
    let (graphs, findings) =
        insurebot::engine::graph::graphs_of_dir(&flows, &root.join("locales"), None, "en").unwrap();
    assert_eq!(graphs.len(), bench_flows::FLOWS);
    assert!(
        findings
            .iter()
            .all(|d| d.severity == insurebot::engine::Severity::Warning),
        "{findings:?}"
    );
    for g in &graphs {
        let svg = g.svg(None);
        assert!(
            svg.starts_with("<svg") && svg.ends_with("</svg>\n"),
            "{}",
            g.flow
        );
        assert!(g.nodes.iter().all(|n| n.marks.is_empty()), "{}", g.flow);
    }
}
