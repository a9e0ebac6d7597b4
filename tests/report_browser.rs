//! The HTML report as the operators see it: opened in headless Chromium, after a real
//! demo run. The page must show the right total of schools and fetch nothing: every
//! request the browser makes for the page, loopback included, is sent to a proxy that
//! counts it. The screenshot stays under `target/` (`CARGO_TARGET_TMPDIR`) as CI's artifact.

mod common;

use std::io::Read as _;
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

    // The proxy: it counts each connection and answers nothing.
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = proxy.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    std::thread::spawn(move || {
        for stream in proxy.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut s = stream;
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = s.read(&mut [0u8; 1024]);
        }
    });

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
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        requests.swap(0, Ordering::SeqCst) > 0,
        "the proxy saw no request of the control page"
    );

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

    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        requests.load(Ordering::SeqCst),
        0,
        "the page made network requests"
    );
}
