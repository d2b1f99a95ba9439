//! Checks a JSON value against the subset of JSON Schema that `catalog.schema.json` uses
//! (`type`, `enum`, `required`, `properties`, `items`, `$ref` into `$defs`), so the documented
//! shape and the real output cannot drift apart. Unknown keywords are refused rather than
//! ignored, so the schema cannot silently start relying on one this checker does not enforce.

use serde_json::Value;

const KNOWN: &[&str] =
    &["$schema", "$id", "$defs", "title", "description", "type", "enum", "required", "properties", "items", "$ref"];

/// Every violation, as `path: problem`.
pub fn validate(schema_text: &str, value: &Value) -> Vec<String> {
    let root: Value = match serde_json::from_str(schema_text) {
        Ok(v) => v,
        Err(e) => return vec![format!("the schema is not JSON: {e}")],
    };
    let mut problems = Vec::new();
    check(&root, &root, value, "$", &mut problems);
    problems
}

fn check(root: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    for key in obj.keys() {
        if !KNOWN.contains(&key.as_str()) {
            out.push(format!("{path}: unsupported schema keyword `{key}`"));
        }
    }
    if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        let target = reference.strip_prefix("#/$defs/").and_then(|name| root.get("$defs").and_then(|d| d.get(name)));
        match target {
            Some(t) => check(root, t, value, path, out),
            None => out.push(format!("{path}: unresolvable $ref {reference}")),
        }
        return;
    }
    if let Some(allowed) = obj.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            out.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(ty) = obj.get("type") {
        let types: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.iter().any(|t| has_type(value, t)) {
            out.push(format!("{path}: expected {types:?}, got {value}"));
            return;
        }
    }
    if let (Some(map), Some(required)) = (value.as_object(), obj.get("required").and_then(Value::as_array)) {
        for key in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                out.push(format!("{path}: missing required `{key}`"));
            }
        }
    }
    if let (Some(map), Some(props)) = (value.as_object(), obj.get("properties").and_then(Value::as_object)) {
        for (key, sub) in props {
            if let Some(v) = map.get(key) {
                check(root, sub, v, &format!("{path}.{key}"), out);
            }
        }
    }
    if let (Some(items), Some(sub)) = (value.as_array(), obj.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check(root, sub, v, &format!("{path}[{i}]"), out);
        }
    }
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

#[test]
fn the_checker_catches_what_it_claims_to() {
    let schema = r##"{"type":"object","required":["a"],"properties":{"a":{"$ref":"#/$defs/k"},"b":{"type":["integer","null"]},"c":{"type":"array","items":{"type":"string"}}},"$defs":{"k":{"enum":["x","y"]}}}"##;
    let ok: Value = serde_json::json!({"a": "x", "b": null, "c": ["s"], "extra": 1});
    assert!(validate(schema, &ok).is_empty());
    let bad: Value = serde_json::json!({"b": "no", "c": [1]});
    let problems = validate(schema, &bad);
    assert_eq!(problems.len(), 3, "{problems:?}");
    let wrong_enum: Value = serde_json::json!({"a": "z"});
    assert_eq!(validate(schema, &wrong_enum).len(), 1);
    assert_eq!(validate(r#"{"minimum": 1}"#, &ok).len(), 1, "unknown keyword refused");
}
