//! The network keys of the schema: `[tls] ca_file` (and `SSL_CERT_FILE`), a target's
//! `tls = { ca_file = "..." }`, and `[source] proxy` (and the proxy environment).
//!
//! Files are read here, once, so that a missing or broken CA bundle is a config error
//! (`check` finds it, `run` exits 2) that names the file and the key. The proxy for the
//! stream is decided here too, from the key or the environment, so `check` can show it.

use std::path::PathBuf;

use super::document::{Item, Table};
use super::error::Problem;
use super::interpolate::Env;
use crate::proxy::{self, Proxy};
use crate::tls::{self, CaFile};

pub(super) const TLS_KEYS: &[&str] = &["ca_file"];

/// `[tls]` and `SSL_CERT_FILE`: the CA bundles added to the bundled roots for the stream
/// and every target.
pub(super) fn global_tls(root: &Table, env: Env) -> Result<Vec<CaFile>, Problem> {
    let mut files = Vec::new();
    let span = match root.get("tls") {
        Some(item) => {
            let t = item.table()?;
            files.extend(ca_files(&t, env)?);
            t.span.clone()
        }
        None => 0..0,
    };
    if let Some(path) = env("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let (certs, skipped) = tls::read_ca_file(&path).map_err(|e| {
            Problem::new(
                span,
                "SSL_CERT_FILE",
                format!(
                    "the environment variable names `{}`, a CA bundle: {e}",
                    path.display()
                ),
            )
        })?;
        files.push(CaFile {
            origin: "SSL_CERT_FILE".to_owned(),
            path,
            certs,
            skipped,
        });
    }
    Ok(files)
}

/// A target's own `tls` table: its bundle comes after the global ones.
pub(super) fn target_tls(item: &Item, env: Env) -> Result<Vec<CaFile>, Problem> {
    ca_files(&item.table()?, env)
}

fn ca_files(t: &Table, env: Env) -> Result<Vec<CaFile>, Problem> {
    t.check_keys(TLS_KEYS)?;
    t.opt("ca_file", |item| ca_file(item, env))
        .map(|file| file.into_iter().collect())
}

fn ca_file(item: &Item, env: Env) -> Result<CaFile, Problem> {
    let path = item.string(env)?;
    if path.trim().is_empty() {
        return Err(
            item.problem("must not be empty (remove the key to use only the bundled roots)")
        );
    }
    let path = PathBuf::from(path);
    let (certs, skipped) = tls::read_ca_file(&path)
        .map_err(|e| item.problem(format!("CA file `{}`: {e}", path.display())))?;
    Ok(CaFile {
        origin: item.key.clone(),
        path,
        certs,
        skipped,
    })
}

/// The proxy the stream at `url` goes through: `[source] proxy`, else the environment
/// (unless `NO_PROXY` covers the stream's host), else none.
pub(super) fn source_proxy(
    t: &Table,
    url: &reqwest::Url,
    env: Env,
) -> Result<Option<Proxy>, Problem> {
    if let Some(item) = t.get("proxy") {
        let value = item.string(env)?;
        if value.trim().eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        return proxy::parse(&value, &item.key)
            .map(Some)
            .map_err(|message| item.problem(message));
    }
    let Some((name, value)) = proxy::env_names(url.scheme()).iter().find_map(|name| {
        env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (*name, v))
    }) else {
        return Ok(None);
    };
    let no_proxy = env("NO_PROXY")
        .or_else(|| env("no_proxy"))
        .unwrap_or_default();
    if proxy::no_proxy_matches(&no_proxy, url.host_str().unwrap_or("")) {
        return Ok(None);
    }
    proxy::parse(&value, name).map(Some).map_err(|message| {
        let key = format!("{}.proxy", t.key);
        Problem::new(
            t.span.clone(),
            &key,
            format!(
                "from the environment variable {name}: {message} (or set [source] proxy = \"none\")"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use crate::config::Config;

    /// A CA certificate made here, as PEM.
    fn ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(text, Path::new("relay.toml"), &|name| {
            env.get(name).cloned()
        })
        .map_err(|e| e.to_string())
    }

    const TARGET: &str = "[targets.hook]\ntype = \"http\"\nurl = \"https://hooks.internal/x\"\n";

    #[test]
    fn ca_files_are_read_at_load_and_reach_the_stream_and_every_target() {
        let dir = tempfile::tempdir().unwrap();
        let (global, own) = (dir.path().join("global.pem"), dir.path().join("own.pem"));
        std::fs::write(&global, ca_pem()).unwrap();
        std::fs::write(&own, format!("{}{}", ca_pem(), ca_pem())).unwrap();
        let text = format!(
            "[tls]\nca_file = {global:?}\n{TARGET}tls = {{ ca_file = {own:?} }}\n[targets.other]\ntype = \"http\"\nurl = \"https://x/\"\n"
        );
        let c = load(&text, &[]).unwrap();
        assert_eq!(c.tls.len(), 1);
        assert_eq!(c.tls[0].origin, "tls.ca_file");
        assert_eq!(c.source.tls, c.tls);
        let origins: Vec<_> = c.targets[0].tls.iter().map(|f| f.origin.as_str()).collect();
        assert_eq!(origins, ["tls.ca_file", "targets.hook.tls.ca_file"]);
        assert_eq!(c.targets[0].tls[1].certs.len(), 2);
        assert_eq!(c.targets[1].tls, c.tls);
        let summary = c.summary();
        assert!(
            summary.contains(&format!(
                "tls: bundled roots + tls.ca_file {} (1 certificate)",
                global.display()
            )),
            "{summary}"
        );
        assert!(
            summary.contains(&format!(
                "    tls: also trusts targets.hook.tls.ca_file {} (2 certificates)",
                own.display()
            )),
            "{summary}"
        );
    }

    #[test]
    fn a_missing_or_broken_ca_file_is_a_config_error_naming_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = load(&format!("[tls]\nca_file = {missing:?}\n"), &[]).unwrap_err();
        assert!(
            e.starts_with("relay.toml:2:11: tls.ca_file: CA file"),
            "{e}"
        );
        assert!(
            e.contains(&missing.display().to_string()) && e.contains("cannot read it"),
            "{e}"
        );

        let key = dir.path().join("key.pem");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = load(&format!("{TARGET}tls = {{ ca_file = {key:?} }}\n"), &[]).unwrap_err();
        assert!(e.contains("targets.hook.tls.ca_file: CA file"), "{e}");
        assert!(e.contains("holds no certificate"), "{e}");
        assert!(!e.contains("AAAA"), "{e}");

        let e = load(&format!("{TARGET}tls = {{ cafile = \"x\" }}\n"), &[]).unwrap_err();
        assert!(
            e.contains("targets.hook.tls.cafile: unknown key (did you mean `ca_file`?)"),
            "{e}"
        );
        let e = load("[tls]\nskip_verify = true\n", &[]).unwrap_err();
        assert!(e.contains("tls.skip_verify: unknown key"), "{e}");
    }

    #[test]
    fn ssl_cert_file_is_honoured_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("bundle.pem");
        std::fs::write(&pem, ca_pem()).unwrap();
        let c = load(TARGET, &[("SSL_CERT_FILE", pem.to_str().unwrap())]).unwrap();
        assert_eq!(c.tls.len(), 1);
        assert_eq!(c.tls[0].origin, "SSL_CERT_FILE");
        assert_eq!(c.targets[0].tls, c.tls);

        let missing = dir.path().join("nope.pem");
        let e = load("", &[("SSL_CERT_FILE", missing.to_str().unwrap())]).unwrap_err();
        assert!(
            e.contains("SSL_CERT_FILE: the environment variable names"),
            "{e}"
        );
        assert!(e.contains(&missing.display().to_string()), "{e}");
    }

    #[test]
    fn the_stream_proxy_comes_from_the_key_then_the_environment() {
        let wss = "[source]\nurl = \"wss://stream.example.com/v1\"\n";
        let ws = "[source]\nurl = \"ws://10.1.2.3:9000/v1\"\n";
        let proxy = |text: &str, env: &[(&str, &str)]| {
            load(text, env)
                .unwrap()
                .source
                .proxy
                .map(|p| format!("{p} from {}", p.origin))
        };
        assert_eq!(proxy(wss, &[]), None);
        assert_eq!(
            proxy(
                wss,
                &[
                    ("HTTPS_PROXY", "http://p:3128"),
                    ("HTTP_PROXY", "http://q:1")
                ]
            )
            .as_deref(),
            Some("http://p:3128 from HTTPS_PROXY")
        );
        assert_eq!(
            proxy(
                ws,
                &[
                    ("HTTPS_PROXY", "http://p:3128"),
                    ("http_proxy", "http://q:1")
                ]
            )
            .as_deref(),
            Some("http://q:1 from http_proxy")
        );
        assert_eq!(
            proxy(wss, &[("all_proxy", "http://a:2")]).as_deref(),
            Some("http://a:2 from all_proxy")
        );
        let env = [("HTTPS_PROXY", "http://p:3128")];
        assert_eq!(proxy(&format!("{wss}proxy = \"none\"\n"), &env), None);
        assert_eq!(
            proxy(&format!("{wss}proxy = \"http://u:pw@o:8080\"\n"), &env).as_deref(),
            Some("http://***@o:8080 from source.proxy")
        );
        assert_eq!(proxy(wss, &[env[0], ("NO_PROXY", "example.com")]), None);
        assert_eq!(
            proxy(
                ws,
                &[("HTTP_PROXY", "http://p:1"), ("no_proxy", "10.0.0.0/8")]
            ),
            None
        );
        assert!(proxy(wss, &[env[0], ("NO_PROXY", "other.com")]).is_some());
    }

    #[test]
    fn proxy_credentials_never_show_in_check_or_errors() {
        let text = "[source]\nurl = \"wss://s.example.com/\"\nproxy = \"http://alice:hunter2@proxy:3128\"\n";
        let summary = load(text, &[]).unwrap().summary();
        assert!(
            summary.contains("  proxy: http://***@proxy:3128 (from source.proxy)\n"),
            "{summary}"
        );
        assert!(
            !summary.contains("hunter2") && !summary.contains("alice"),
            "{summary}"
        );

        let e = load("[source]\nproxy = \"socks5://alice:hunter2@p:1080\"\n", &[]).unwrap_err();
        assert!(
            e.contains("source.proxy: a `socks5://` proxy is not supported"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");

        let e = load("", &[("HTTPS_PROXY", "https://alice:hunter2@p")]).unwrap_err();
        assert!(
            e.contains("source.proxy: from the environment variable HTTPS_PROXY"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }
}
