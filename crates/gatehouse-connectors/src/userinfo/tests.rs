use super::*;

async fn build(body: &str) -> Result<Arc<dyn Connector>, ConfigError> {
    let settings: toml::Table = toml::from_str(body).expect("test TOML");
    UserinfoFactory::default()
        .build(BuildContext {
            name: "u".into(),
            path: "connectors.u".into(),
            settings,
            metrics: prometheus::Registry::new(),
        })
        .await
}

#[tokio::test]
async fn config_errors_name_their_keys() {
    let base = "region_header = \"X-Region\"\ndefault_endpoint = \"http://127.0.0.1:1/ui\"\n[endpoints]\nFR = \"http://127.0.0.1:2/ui\"\n";
    assert!(build(base).await.is_ok());
    for (body, path) in [
        (format!("method = \"get\"\n{base}"), "connectors.u.method"),
        (format!("method = \"PUT\"\n{base}"), "connectors.u.method"),
        (
            format!("post_token_in_body = true\n{base}"),
            "connectors.u.post_token_in_body",
        ),
        (
            base.replace("region_header = \"X-Region\"\n", ""),
            "connectors.u.region_header",
        ),
        (
            base.replace("http://127.0.0.1:2/ui", "ftp://x/ui"),
            "connectors.u.endpoints.FR",
        ),
        (
            base.replace("http://127.0.0.1:1/ui", "not a url"),
            "connectors.u.default_endpoint",
        ),
        (
            format!("{base}[region_inject_headers.DE]\n\"X-A\" = \"sub\"\n"),
            "connectors.u.region_inject_headers.DE",
        ),
        (
            format!("{base}[region_inject_headers.FR]\n\"X-A\" = \"$[\"\n"),
            "connectors.u.region_inject_headers.FR.X-A",
        ),
        (
            format!("error_payload_location = \"$[\"\n{base}"),
            "connectors.u.error_payload_location",
        ),
        (
            format!("status_on_idp_error = 200\n{base}"),
            "connectors.u.status_on_idp_error",
        ),
        (
            format!("cache_tll = \"1m\"\n{base}"),
            "connectors.u.cache_tll",
        ),
        (
            format!("region_match = \"case_insensitive\"\n{base}fr = \"http://127.0.0.1:3/ui\"\n"),
            "connectors.u.endpoints.fr",
        ),
    ] {
        let e = build(&body)
            .await
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{body}"));
        assert_eq!(e.path, path, "{e}");
    }
    let e = build("method = \"GET\"").await.err().unwrap();
    assert!(e.message.contains("default_endpoint"), "{e}");
}

#[test]
fn helpers() {
    assert_eq!(form_encode("a.b-c_d~e+f/g="), "a.b-c_d~e%2Bf%2Fg%3D");
    assert_eq!(html_escape("<b>&\"</b>"), "&lt;b&gt;&amp;&quot;&lt;/b&gt;");
    let t = format!("x.{}.y", URL_SAFE_NO_PAD.encode("{\"exp\":12345}"));
    assert_eq!(unverified_exp(&t), Some(12345));
    assert_eq!(unverified_exp("opaque-token"), None);
}
