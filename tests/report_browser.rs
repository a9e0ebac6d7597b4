//! The HTML report as the operators see it: opened in headless Chromium, after a real
//! demo run. The page must show the right total of schools and fetch nothing: every
//! request the browser makes, loopback included, is sent to a proxy that records its host,
//! and none may go anywhere but the browser's own services (its update, clock and account
//! checks, which it makes for any page). The screenshot stays under `target/`
//! (`CARGO_TARGET_TMPDIR`) as CI's artifact.

mod common;

use std::io::Read as _;
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{a2a, text};

/// Chromium with what it would fetch on its own turned off, every request through `proxy`.
fn chromium(bin: &str, proxy: u16) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-features=OptimizationHints,Translate,MediaRouter",
        "--window-size=1280,2200",
    ])
    .arg(format!("--proxy-server=http://127.0.0.1:{proxy}"))
    // Loopback too goes through the proxy.
    .arg("--proxy-bypass-list=<-loopback>")
    .arg(format!(
        "--user-data-dir={}",
        tempfile::tempdir().unwrap().keep().display()
    ));
    c
}

#[test]
fn the_report_opens_in_chromium_with_every_school_and_fetches_nothing() {
    let test = "the_report_opens_in_chromium_with_every_school_and_fetches_nothing";
    let Some(bin) = a2a_testkit::service_url("A2A_TEST_CHROMIUM", test) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let o = a2a(home.path(), &["demo", "--migrations", "1", "--eix", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let html = home.path().join("report.html");
    let o = a2a(home.path(), &["report", "--html", html.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let url = format!("file://{}", html.display());

    // The proxy: it records the host of each request and answers nothing.
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = proxy.local_addr().unwrap().port();
    let hosts = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = hosts.clone();
    std::thread::spawn(move || {
        for mut stream in proxy.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 512];
            let n = stream.read(&mut buf).unwrap_or(0);
            // `GET http://HOST/… HTTP/1.1` or `CONNECT HOST:443 HTTP/1.1`.
            let line = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            let target = line.split(' ').nth(1).unwrap_or("?");
            let host = target
                .trim_start_matches("http://")
                .split(['/', ':'])
                .next()
                .unwrap_or("?")
                .to_owned();
            seen.lock().unwrap().push(host);
        }
    });
    // What Chromium asks of its own services whatever the page: not the page's doing.
    let own = |h: &String| {
        [
            "clients2.google.com",
            "update.googleapis.com",
            "accounts.google.com",
        ]
        .contains(&h.as_str())
    };
    let page_requests = || -> Vec<String> {
        std::thread::sleep(Duration::from_millis(500));
        hosts
            .lock()
            .unwrap()
            .drain(..)
            .filter(|h| !own(h))
            .collect()
    };

    // The control: a page that fetches an image is seen by the proxy.
    let control = home.path().join("control.html");
    std::fs::write(
        &control,
        "<html><body><img src=\"http://a2a.invalid/x.png\"></body></html>",
    )
    .unwrap();
    let o = chromium(&bin, port)
        .arg("--dump-dom")
        .arg(format!("file://{}", control.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(page_requests(), ["a2a.invalid"], "the control page's image");

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let _ = std::fs::remove_file(&shot);
    let o = chromium(&bin, port)
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );

    let o = chromium(&bin, port)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(dom.contains("3 schools, written"), "{dom}");
    assert!(dom.contains("<svg"), "the charts are drawn: {dom}");

    assert_eq!(
        page_requests(),
        Vec::<String>::new(),
        "the report made network requests"
    );
}
