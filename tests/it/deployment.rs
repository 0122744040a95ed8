//! The deployment files (no container engine runs here, so they are read against the binary):
//! every variable the compose file and the image give the gateway is one of its settings, and
//! together they make valid settings; the balancer names the compose file's replicas on the
//! image's port; the image's health check is the binary's own command.

use std::collections::HashMap;

use mcpgate::config::{Bus, Settings};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// A compose value with `${NAME:?message}` and `${NAME:-default}` filled in as an operator's
/// shell would (a required one with a sample value of the length the message asks for).
fn interpolate(value: &str) -> String {
    let Some(start) = value.find("${") else {
        return value.to_owned();
    };
    let end = start + value[start..].find('}').expect("a closing brace");
    let inner = &value[start + 2..end];
    let filled = match inner.split_once(":-") {
        Some((_, default)) => default.to_owned(),
        None => "x".repeat(40),
    };
    format!(
        "{}{filled}{}",
        &value[..start],
        interpolate(&value[end + 1..])
    )
}

#[test]
fn the_compose_file_and_the_image_speak_the_binarys_settings() {
    let compose: serde_json::Value =
        serde_saphyr::from_str(&read("docker/compose.yaml")).expect("YAML");
    let services = compose["services"].as_object().expect("services");
    for replica in ["gateway-1", "gateway-2", "gateway-3"] {
        assert!(services.contains_key(replica), "{replica}");
    }
    let mut values: HashMap<String, String> = HashMap::new();
    // The image's own environment first, the compose file's over it.
    let dockerfile = read("docker/Dockerfile");
    let env_block = dockerfile
        .split("\nENV ")
        .nth(1)
        .expect("an ENV instruction")
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .take_while(|line| !line.starts_with(char::is_uppercase) || line.contains('='))
        .collect::<Vec<_>>()
        .join(" ");
    for pair in env_block
        .split_whitespace()
        .filter(|word| word.contains('='))
    {
        let (name, value) = pair.split_once('=').unwrap();
        values.insert(name.to_owned(), value.to_owned());
    }
    assert!(
        dockerfile.contains(r#"CMD ["mcpgate", "health"]"#),
        "{dockerfile}"
    );
    let environment = compose["x-gateway"]["environment"]
        .as_object()
        .expect("the replicas' environment");
    let described: Vec<String> = Settings::describe()
        .into_iter()
        .map(|(name, ..)| name)
        .collect();
    for (name, value) in environment {
        assert!(described.contains(name), "{name} is not a setting");
        let text = match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        values.insert(name.clone(), interpolate(&text));
    }
    for name in values.keys() {
        assert!(described.contains(name), "{name} is not a setting");
    }
    let settings = Settings::from_lookup(&|name| values.get(name).cloned())
        .unwrap_or_else(|error| panic!("the compose file's settings: {error}"));
    assert_eq!(settings.cluster.bus, Bus::Redis);
    assert_eq!(settings.host.to_string(), "0.0.0.0");
    // The balancer sends to every replica, on the port the image listens on.
    let nginx = read("docker/nginx.conf");
    for replica in ["gateway-1", "gateway-2", "gateway-3"] {
        assert!(
            nginx.contains(&format!("server {replica}:{}", settings.port)),
            "{replica} in nginx.conf"
        );
    }
    assert!(nginx.contains("proxy_buffering off"), "event streams pass");
    // Each replica says where the others reach it: itself, on the image's port, with the
    // replicas' shared environment besides.
    for replica in ["gateway-1", "gateway-2", "gateway-3"] {
        let own = services[replica]["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("{replica}'s environment"));
        let advertised = own["CLUSTER_ADVERTISE_URL"].as_str().unwrap_or_default();
        assert_eq!(
            advertised,
            format!("http://{replica}:{}", settings.port),
            "{replica}"
        );
        for name in environment.keys() {
            assert!(own.contains_key(name), "{replica} keeps {name}");
        }
        let mut values = values.clone();
        values.insert("CLUSTER_ADVERTISE_URL".into(), advertised.to_owned());
        let settings = Settings::from_lookup(&|name| values.get(name).cloned())
            .unwrap_or_else(|error| panic!("{replica}'s settings: {error}"));
        assert_eq!(settings.cluster.advertise_url.as_deref(), Some(advertised));
    }
    assert!(
        !nginx.contains("ip_hash") && !nginx.contains("sticky"),
        "no stickiness"
    );
}
