//! A newcomer's first steps (issue 21): the root URL leads somewhere useful.

use reqwest::StatusCode;
use reqwest::header::LOCATION;

use crate::helpers::*;

async fn root_location(app: &TestApp) -> (StatusCode, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(format!("{}/", app.address)).send().await.unwrap();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status(), location)
}

#[tokio::test]
async fn the_root_leads_to_the_simulator_in_sandbox_mode_and_to_the_console_otherwise() {
    for backend in backends() {
        let sandbox = spawn_app_with(&backend, |s| {
            s.whatsapp.access_token = None;
            s.whatsapp.app_secret = None;
        })
        .await;
        assert_eq!(
            root_location(&sandbox).await,
            (StatusCode::SEE_OTHER, "/simulator".to_owned()),
            "{backend:?}"
        );
        let live = spawn_app(&backend).await;
        assert_eq!(
            root_location(&live).await,
            (StatusCode::SEE_OTHER, "/console".to_owned()),
            "{backend:?}"
        );
    }
}
