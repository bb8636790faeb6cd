//! The OpenAPI document served at `GET /api/openapi.json` (crates/server/openapi.json) is valid
//! JSON, claims OpenAPI 3.1, and documents exactly the routes — paths and methods — that
//! `src/api/mod.rs` registers. The router source is read at test time, so adding a route without
//! documenting it (or the reverse) fails here.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const UNAUTHENTICATED: [&str; 3] = ["/health", "/api/health", "/ready"];

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn document() -> Value {
    serde_json::from_str(&read("openapi.json")).unwrap_or_else(|e| panic!("openapi.json is not valid JSON: {e}"))
}

fn fail_on(problems: Vec<String>) {
    assert!(problems.is_empty(), "openapi.json problems:\n  {}", problems.join("\n  "));
}

/// A Rust string literal starting at `s[0] == '"'`: its contents and the rest after it.
fn string_literal(s: &str) -> (&str, &str) {
    let body = &s[1..];
    let end = body.find('"').unwrap_or_else(|| panic!("unterminated string literal: {s:.60}"));
    let lit = &body[..end];
    assert!(!lit.contains('\\'), "escapes in route literals are not supported: {lit:?}");
    (lit, &body[end + 1..])
}

/// The text between `s`'s opening parenthesis (already consumed) and its matching `)`.
fn balanced_args(s: &str) -> &str {
    let mut depth = 1;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses after .route(: {s:.80}")
}

/// Expands a `format!` string whose only interpolations are known variables; `{{`/`}}` are braces.
fn expand_format(fmt: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let value = vars.get(name.as_str()).unwrap_or_else(|| {
                    panic!("route format string {fmt:?} uses {{{name}}}, which this test does not know")
                });
                out.push_str(value);
            }
            '}' => panic!("unmatched '}}' in route format string {fmt:?}"),
            c => out.push(c),
        }
    }
    out
}

/// HTTP methods routed in a handler expression such as `get(a).post(b)` or `axum::routing::delete(c)`:
/// method-router calls are identifiers followed by `(`; handlers are passed, never called.
fn methods_in(handlers: &str) -> BTreeSet<String> {
    let bytes = handlers.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        if is_ident(bytes[i]) && (i == 0 || !is_ident(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && is_ident(bytes[i]) {
                i += 1;
            }
            let word = &handlers[start..i];
            if bytes.get(i) == Some(&b'(') && HTTP_METHODS.contains(&word) {
                found.insert(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    found
}

/// Every route registered in `src/api/mod.rs`: normalised path → methods.
fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
    let src = read("src/api/mod.rs");
    let cp_decl = "let cp = ";
    let at = src.find(cp_decl).expect("src/api/mod.rs no longer declares `let cp = \"…\"`; update this test");
    let (cp, _) = string_literal(&src[at + cp_decl.len()..]);
    let vars = BTreeMap::from([("cp", cp.to_string())]);

    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (at, _) in src.match_indices(".route(") {
        let args = balanced_args(&src[at + ".route(".len()..]).trim_start();
        let (path, handlers) = if args.starts_with('"') {
            let (lit, rest) = string_literal(args);
            (lit.to_string(), rest)
        } else if let Some(rest) = args.strip_prefix("&format!(") {
            let (fmt, rest) = string_literal(rest.trim_start());
            let rest = rest.trim_start().strip_prefix(')').expect("format! with arguments in a route path");
            (expand_format(fmt, &vars), rest)
        } else {
            panic!("unsupported route path expression (use a literal or &format!(\"{{cp}}/…\")): {args:.80}");
        };
        // A wildcard segment `{*name}` is the path parameter `{name}` in OpenAPI.
        let path = path.replace("{*", "{");
        let methods = methods_in(handlers);
        assert!(!methods.is_empty(), "no HTTP method found for route {path:?} in: {handlers}");
        assert!(!routes.contains_key(&path), "route {path:?} registered twice");
        routes.insert(path, methods);
    }
    assert!(routes.len() > 10, "found only {} routes in src/api/mod.rs; is the parser still right?", routes.len());
    routes
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("path item is an object") {
            if HTTP_METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op));
            }
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> Option<&'a Value> {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.strip_prefix('#')?),
        None => Some(v),
    }
}

#[test]
fn document_is_openapi_3_1() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("`openapi` must be a string");
    assert!(version.starts_with("3.1"), "`openapi` is {version:?}; expected 3.1.x");
    assert!(doc["info"]["title"].is_string(), "info.title is required");
    assert_eq!(
        doc["info"]["version"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "info.version must be the crate version (the server reports it in /api/v1/metadata too)"
    );
    assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()), "paths must not be empty");
}

#[test]
fn documents_exactly_the_routes_of_the_router() {
    let doc = document();
    let routes = router_routes();
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, method, _) in operations(&doc) {
        documented.entry(path).or_default().insert(method);
    }
    for path in doc["paths"].as_object().expect("paths").keys() {
        documented.entry(path.clone()).or_default();
    }
    let mut problems = Vec::new();
    for (path, methods) in &routes {
        match documented.get(path) {
            None => problems.push(format!("route {path} ({methods:?}) is not documented under `paths`")),
            Some(doc_methods) if doc_methods != methods => {
                problems.push(format!("{path}: router has {methods:?}, document has {doc_methods:?}"));
            }
            Some(_) => {}
        }
    }
    for path in documented.keys().filter(|p| !routes.contains_key(*p)) {
        problems.push(format!("documented path {path} is not registered in src/api/mod.rs"));
    }
    fail_on(problems);
}

#[test]
fn operations_are_complete() {
    let doc = document();
    let mut problems = Vec::new();
    let mut operation_ids = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let at = format!("{} {path}", method.to_uppercase());
        match op["operationId"].as_str() {
            Some(id) if operation_ids.insert(id.to_string()) => {}
            Some(id) => problems.push(format!("{at}: duplicate operationId {id:?}")),
            None => problems.push(format!("{at}: no operationId")),
        }
        if op["responses"].as_object().is_none_or(|r| r.is_empty()) {
            problems.push(format!("{at}: no responses"));
        }
        // Path template parameters and declared path parameters (path item or operation) agree.
        let in_template: BTreeSet<String> =
            path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).map(str::to_string).collect();
        let declared: BTreeSet<String> = [&doc["paths"][&path]["parameters"], &op["parameters"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect();
        if in_template != declared {
            problems.push(format!("{at}: path parameters {in_template:?} but declared {declared:?}"));
        }
    }
    fail_on(problems);
}

#[test]
fn every_reference_resolves() {
    fn walk<'a>(v: &'a Value, refs: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    refs.push(r);
                }
                m.values().for_each(|v| walk(v, refs));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    let problems = refs
        .into_iter()
        .filter(|r| r.strip_prefix('#').and_then(|p| doc.pointer(p)).is_none())
        .map(|r| format!("$ref {r:?} does not resolve"))
        .collect();
    fail_on(problems);
}

#[test]
fn only_health_is_unauthenticated() {
    let doc = document();
    let schemes = &doc["components"]["securitySchemes"];
    let api_key = schemes
        .as_object()
        .and_then(|s| s.values().find(|s| s["type"] == "apiKey"))
        .expect("an apiKey security scheme");
    assert_eq!((api_key["in"].as_str(), api_key["name"].as_str()), (Some("header"), Some("x-token")));
    assert!(
        schemes.as_object().is_some_and(|s| s.values().any(|s| s["type"] == "http" && s["scheme"] == "bearer")),
        "the router also accepts `Authorization: Bearer`; document it as an http bearer scheme"
    );
    assert!(doc["security"].as_array().is_some_and(|s| !s.is_empty()), "a global security requirement is needed");
    let mut problems = Vec::new();
    for (path, method, op) in operations(&doc) {
        let open = op["security"].as_array().is_some_and(|s| s.is_empty());
        match (UNAUTHENTICATED.contains(&path.as_str()), open) {
            (true, false) => problems.push(format!("{method} {path} needs no token: set `security: []`")),
            (false, true) => problems.push(format!("{method} {path} requires the token but is marked open")),
            (false, false) if op["responses"].get("401").is_none() => {
                problems.push(format!("{method} {path} requires the token but documents no 401"));
            }
            _ => {}
        }
    }
    fail_on(problems);
}
