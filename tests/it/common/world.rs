//! A ready-made gateway for MCP tests: a REST fixture, five REST tools, a resource, a resource
//! template, a prompt, and a virtual server holding some of them.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::fixture::RestFixture;
use super::{Backend, TestDb, TestServer};

/// A gateway with a REST fixture and a registry: five tools, two resources, a prompt, and a
/// virtual server holding some of them.
pub struct World {
    pub server: TestServer,
    pub fixture: RestFixture,
    pub server_id: String,
    _db: TestDb,
}

impl World {
    /// Builds the world on a fresh database.
    pub async fn new(backend: Backend) -> Self {
        let db = TestDb::new(backend).await;
        let server = TestServer::start(&db, &[("MCP_PAGE_SIZE", "3")]).await;
        let (fixture, server_id) = populate(&server).await;
        World {
            server_id,
            server,
            fixture,
            _db: db,
        }
    }

    /// The virtual server's MCP endpoint path.
    pub fn server_path(&self) -> String {
        format!("/servers/{}/mcp", self.server_id)
    }

    /// Stops the gateway and the fixture.
    pub async fn stop(self) {
        self.server.stop().await;
        self.fixture.stop().await;
    }
}

/// Registers the world's registry on a running gateway: the REST fixture it calls and the id
/// of the virtual server.
pub async fn populate(server: &TestServer) -> (RestFixture, String) {
    let fixture = RestFixture::start().await;
    let base = &fixture.base;
    let tools = [
        json!({"name": "get_weather", "description": "Weather for a city", "url": format!("{base}/weather/{{city}}"), "request_type": "GET",
               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "units": {"type": "string", "enum": ["metric", "imperial"]}}, "required": ["city"]}}),
        json!({"name": "echo", "url": format!("{base}/echo"), "request_type": "POST",
               "input_schema": {"type": "object", "properties": {"message": {"type": "string"}}}}),
        json!({"name": "always_fails", "url": format!("{base}/fail"), "request_type": "GET"}),
        json!({"name": "slow", "url": format!("{base}/slow"), "request_type": "GET"}),
        json!({"name": "plain_text", "url": format!("{base}/text"), "request_type": "GET"}),
    ];
    let mut ids = Vec::new();
    for tool in tools {
        let created = server.admin(Method::POST, "/tools", Some(tool)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        ids.push(created.body["id"].clone());
    }
    let guide = server
        .admin(Method::POST, "/resources", Some(json!({"uri": "docs://guide", "name": "Guide", "content": "Read the guide", "mime_type": "text/markdown"})))
        .await;
    let sections = server
        .admin(Method::POST, "/resources", Some(json!({"uri_template": "docs://sections/{section}", "name": "Sections", "content": "Section {section}"})))
        .await;
    let prompt = server
        .admin(Method::POST, "/prompts", Some(json!({
            "name": "summarise", "description": "Summarise a text",
            "template": "Summarise {{ text }} in {{ style }} style",
            "arguments": [{"name": "text", "required": true}, {"name": "style", "values": ["formal", "friendly", "fun"]}]
        })))
        .await;
    let virtual_server = server
        .admin(Method::POST, "/servers", Some(json!({
            "name": "Weather desk", "description": "Weather tools and docs",
            "tool_ids": [ids[0], ids[1]], "resource_ids": [guide.body["id"], sections.body["id"]], "prompt_ids": [prompt.body["id"]]
        })))
        .await;
    assert_eq!(
        virtual_server.status,
        StatusCode::CREATED,
        "{}",
        virtual_server.body
    );
    (
        fixture,
        virtual_server.body["id"].as_str().unwrap().to_owned(),
    )
}
