//! The OpenAPI 3.1 document of `/api/v1`, served at `GET /api/v1/openapi.json`.
//!
//! It is written by hand in YAML beside this file (`api.openapi.yaml`) rather than generated
//! from the handlers: the handlers validate by hand (every problem listed with its field), so
//! the types could not say what they accept. The document and the router are kept together by
//! a test (`tests/api/openapi.rs`) that compares the document's operations with
//! [`super::api_routes`]'s, both ways, and by schemathesis in CI, which calls every operation
//! with generated input and accepts only documented answers.
//!
//! A feature may keep its part in a file of its own (paths plus the components they use):
//! list it in [`FRAGMENTS`] and it is merged into the one served document. Two fragments may
//! not describe the same path, nor give one component name two different definitions.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// The document's parts: the first is the whole document (info, security, shared components),
/// the others add `paths` and `components`.
pub const FRAGMENTS: &[(&str, &str)] = &[
    ("api.openapi.yaml", include_str!("api.openapi.yaml")),
    ("otp.openapi.yaml", include_str!("otp.openapi.yaml")),
];

/// The served document, merged once. A fragment that does not parse or merge is a bug the
/// unit test below catches before any build ships.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let document = merge(FRAGMENTS).unwrap_or_else(|e| panic!("the OpenAPI document: {e}"));
    serde_json::to_string(&document).expect("a JSON value serializes")
});

/// The merged document.
///
/// # Panics
/// When a fragment does not parse or merge (see the unit test).
pub fn document() -> Value {
    serde_json::from_str(&DOCUMENT).expect("the document was serialized from a value")
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// Merges `fragments` (name, YAML text) into one document.
///
/// # Errors
/// A fragment that is not YAML or not a mapping, a path described twice, or a component name
/// with two different definitions; the message names the fragment and the key.
pub fn merge(fragments: &[(&str, &str)]) -> Result<Value, String> {
    let mut parsed = fragments.iter().map(|(name, text)| {
        serde_saphyr::from_str::<Value>(text)
            .map_err(|e| format!("{name}: {e}"))
            .and_then(|v| match v {
                Value::Object(map) => Ok((*name, map)),
                _ => Err(format!("{name}: not a mapping")),
            })
    });
    let Some(first) = parsed.next() else {
        return Err("no fragment".into());
    };
    let (_, mut document) = first?;
    for next in parsed {
        let (name, fragment) = next?;
        if let Some(Value::Object(paths)) = fragment.get("paths") {
            let target = object_at(&mut document, "paths");
            for (path, item) in paths {
                if target.contains_key(path) {
                    return Err(format!("{name}: path {path} is already described"));
                }
                target.insert(path.clone(), item.clone());
            }
        }
        if let Some(Value::Object(components)) = fragment.get("components") {
            for (kind, entries) in components {
                let Value::Object(entries) = entries else {
                    return Err(format!("{name}: components.{kind} is not a mapping"));
                };
                let target = object_at(object_at(&mut document, "components"), kind);
                for (key, definition) in entries {
                    match target.get(key) {
                        Some(existing) if existing != definition => {
                            return Err(format!(
                                "{name}: components.{kind}.{key} differs from the one already defined"
                            ));
                        }
                        Some(_) => {}
                        None => {
                            target.insert(key.clone(), definition.clone());
                        }
                    }
                }
            }
        }
    }
    Ok(Value::Object(document))
}

/// The mapping under `key`, created when absent (a non-mapping there is replaced: the first
/// fragment's shape is checked by the unit test).
fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("made a mapping just above")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_fragments_merge_into_an_openapi_3_1_document() {
        let document = merge(FRAGMENTS).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert!(document["paths"].as_object().is_some_and(|p| !p.is_empty()));
        assert_eq!(document, super::document());
    }

    #[test]
    fn a_fragment_adds_its_paths_and_components_and_may_repeat_an_identical_one() {
        let base = "openapi: 3.1.0\npaths:\n  /a: {}\ncomponents:\n  schemas:\n    Error: { type: object }\n";
        let extra = "paths:\n  /b: {}\ncomponents:\n  schemas:\n    Error: { type: object }\n    Otp: { type: string }\n  parameters:\n    Id: { name: id, in: path }\n";
        let merged = merge(&[("base", base), ("extra", extra)]).unwrap();
        let paths: Vec<&String> = merged["paths"].as_object().unwrap().keys().collect();
        assert_eq!(paths, ["/a", "/b"]);
        assert_eq!(merged["components"]["schemas"]["Otp"]["type"], "string");
        assert_eq!(merged["components"]["parameters"]["Id"]["in"], "path");
    }

    #[test]
    fn a_path_described_twice_or_a_component_defined_two_ways_is_refused_by_name() {
        let base = "openapi: 3.1.0\npaths:\n  /a: {}\ncomponents:\n  schemas:\n    Error: { type: object }\n";
        let again = "paths:\n  /a: {}\n";
        let error = merge(&[("base", base), ("otp.openapi.yaml", again)]).unwrap_err();
        assert!(
            error.contains("otp.openapi.yaml") && error.contains("/a"),
            "{error}"
        );
        let other = "components:\n  schemas:\n    Error: { type: string }\n";
        let error = merge(&[("base", base), ("other", other)]).unwrap_err();
        assert!(error.contains("components.schemas.Error"), "{error}");
        assert!(merge(&[("bad", "- a list")]).unwrap_err().contains("bad"));
    }
}
