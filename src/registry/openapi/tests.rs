//! Unit tests of reading OpenAPI documents.
use super::*;

fn petstore() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Pets", "version": "1"},
        "paths": {
            "/pets/{petId}": {
                "parameters": [{"name": "petId", "in": "path", "required": true,
                                "schema": {"type": "integer"}}],
                "get": {
                    "operationId": "showPet",
                    "summary": "One pet",
                    "parameters": [{"name": "fields", "in": "query",
                                    "schema": {"type": "string"}, "description": "which"}],
                    "responses": {"200": {"description": "ok", "content": {"application/json":
                        {"schema": {"$ref": "#/components/schemas/Pet"}}}}}
                },
                "put": {
                    "operationId": "update pet!",
                    "requestBody": {"required": true, "content": {"application/json":
                        {"schema": {"$ref": "#/components/schemas/Pet"}}}},
                    "responses": {"204": {"description": "done"}}
                }
            },
            "/pets": {
                "post": {
                    "operationId": "addPets",
                    "requestBody": {"content": {"application/json":
                        {"schema": {"type": "array", "items": {}}}}},
                    "responses": {}
                },
                "get": {
                    "operationId": "listPets",
                    "parameters": [{"name": "Cookie", "in": "header", "required": true}],
                    "responses": {}
                }
            }
        },
        "components": {"schemas": {
            "Pet": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "example": "Rex"},
                "example": {"type": "string", "enum": [{"$ref": "kept"}]},
                "tag": {"type": "string", "nullable": true},
                "parent": {"$ref": "#/components/schemas/Pet"}
            }}
        }}
    })
}

#[test]
fn operations_become_tools() {
    let imported = read(&petstore(), "https://api.example/v1/", None).unwrap();
    let show = &imported.operations[0];
    assert_eq!(show.name, "showPet");
    assert_eq!(show.method, "GET");
    assert_eq!(show.url, "https://api.example/v1/pets/{petId}{?fields}");
    assert_eq!(show.description.as_deref(), Some("One pet"));
    assert_eq!(show.input_schema["required"], json!(["petId"]));
    assert_eq!(
        show.input_schema["properties"]["fields"]["description"],
        "which"
    );
    let output = show.output_schema.as_ref().unwrap();
    assert_eq!(
        output["properties"]["tag"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(output["properties"]["name"], json!({"type": "string"}));
    assert_eq!(
        output["properties"]["example"]["enum"],
        json!([{"$ref": "kept"}])
    );
    let update = &imported.operations[1];
    assert_eq!(update.name, "update_pet");
    assert_eq!(update.input_schema["required"], json!(["petId", "name"]));
    assert!(update.input_schema["properties"]["parent"].is_object());
    let skipped: Vec<&str> = imported.skipped.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(skipped, ["listPets", "addPets"], "{:?}", imported.skipped);
    assert!(imported.skipped[0].1.contains("Cookie"));
    assert!(imported.skipped[1].1.contains("not a JSON object"));
}

#[test]
fn a_subset_and_broken_documents() {
    let only = vec!["showPet".to_owned()];
    let imported = read(&petstore(), "https://api.example", Some(&only)).unwrap();
    assert_eq!(imported.operations.len(), 1);
    let missing = vec!["nope".to_owned()];
    assert!(
        read(&petstore(), "https://x", Some(&missing))
            .unwrap_err()
            .contains("nope")
    );
    assert!(
        read(&json!({"swagger": "2.0"}), "https://x", None)
            .unwrap_err()
            .contains("openapi")
    );
    assert!(
        read(&json!({"openapi": "3.1.0"}), "https://x", None)
            .unwrap_err()
            .contains("paths")
    );
    let dangling = json!({"openapi": "3.1.0", "paths": {"/a": {"get": {"operationId": "a",
        "parameters": [{"$ref": "#/components/parameters/gone"}]}}}});
    let imported = read(&dangling, "https://x", None).unwrap();
    assert!(imported.skipped[0].1.contains("points to nothing"));
}

#[test]
fn the_gateways_own_document_imports() {
    let own = serde_json::to_value(crate::http::openapi::document()).unwrap();
    let imported = read(&own, "http://127.0.0.1:4444", None).unwrap();
    let list = imported
        .operations
        .iter()
        .find(|op| op.operation_id == "list_tools")
        .expect("list_tools");
    assert_eq!(list.method, "GET");
    assert!(
        list.url.starts_with("http://127.0.0.1:4444/tools{?"),
        "{}",
        list.url
    );
    let create = imported
        .operations
        .iter()
        .find(|op| op.operation_id == "create_tool")
        .expect("create_tool");
    assert_eq!(create.method, "POST");
    assert!(create.input_schema["properties"]["name"].is_object());
    assert!(
        imported.operations.len() > 40,
        "most operations import: {:?}",
        imported.skipped
    );
}

#[test]
fn refs_that_fan_out_are_bounded() {
    // Each level refers to the next four times: 4^30 nodes if inlined naively, and still
    // millions within the depth limit alone.
    let mut schemas = Map::new();
    for level in 0..30 {
        let next = json!({"$ref": format!("#/components/schemas/L{}", level + 1)});
        schemas.insert(
            format!("L{level}"),
            json!({"type": "object", "properties":
                {"a": next, "b": next, "c": next, "d": next}}),
        );
    }
    schemas.insert("L30".into(), json!({"type": "string"}));
    let document = json!({"openapi": "3.1.0", "paths": {"/x": {"post": {
        "operationId": "bomb",
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/L0"}}}}
    }}}, "components": {"schemas": schemas}});
    let imported = read(&document, "https://x", None).unwrap();
    assert!(imported.operations.is_empty());
    assert!(
        imported.skipped[0].1.contains("nodes"),
        "{:?}",
        imported.skipped
    );
}

/// YAML documents read into the same tree as JSON; an alias bomb and garbage are refused
/// with the reason.
#[test]
fn yaml_documents() {
    let yaml = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /pets/{id}:\n    get:\n      operationId: getPet\n      parameters:\n        - &id {name: id, in: path, required: true, schema: {type: integer}}\n      responses: {'200': {description: ok}}\n";
    let document = parse(yaml.as_bytes()).unwrap();
    let imported = read(&document, "https://api.example", None).unwrap();
    assert_eq!(imported.operations.len(), 1);
    assert_eq!(imported.operations[0].name, "getPet");
    assert_eq!(
        parse(br#"{"openapi": "3.1.0"}"#).unwrap()["openapi"],
        "3.1.0"
    );
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..12 {
        let previous = (b'a' + level - 1) as char;
        let name = (b'a' + level) as char;
        bomb.push_str(&format!("{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"));
    }
    let refused = parse(bomb.as_bytes()).unwrap_err();
    assert!(refused.contains("neither JSON nor YAML"), "{refused}");
    assert!(
        parse(b"- just\n- a list\n")
            .unwrap_err()
            .contains("not an OpenAPI document")
    );
    assert!(
        parse(b"{unclosed: [")
            .unwrap_err()
            .contains("neither JSON nor YAML")
    );
    assert!(parse(&[0xff, 0xfe]).unwrap_err().contains("not UTF-8"));
}

/// Header parameters become arguments the tool sends as headers; a header no argument may
/// set keeps a required parameter's operation out, and an optional one is left out.
#[test]
fn header_parameters() {
    let document = json!({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {
            "/a": {"get": {"operationId": "a", "parameters": [
                {"name": "X-Tenant", "in": "header", "required": true, "schema": {"type": "string"}},
                {"name": "Cookie", "in": "header", "schema": {"type": "string"}}
            ], "responses": {"200": {"description": "ok"}}}},
            "/b": {"get": {"operationId": "b", "parameters": [
                {"name": "Host", "in": "header", "required": true}
            ], "responses": {"200": {"description": "ok"}}}}
        }
    });
    let imported = read(&document, "https://api.example", None).unwrap();
    assert_eq!(imported.operations.len(), 1);
    let schema = &imported.operations[0].input_schema;
    assert_eq!(
        schema["properties"]["X-Tenant"][crate::registry::tools::HEADER_KEYWORD],
        "X-Tenant"
    );
    assert_eq!(schema["required"], json!(["X-Tenant"]));
    assert!(schema["properties"].get("Cookie").is_none());
    assert!(
        imported.skipped[0].1.contains("Host"),
        "{:?}",
        imported.skipped
    );
}
