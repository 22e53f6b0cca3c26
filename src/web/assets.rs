//! The page's assets, embedded in the binary: nothing is fetched from
//! another site, and the page works offline and behind any proxy.

/// An asset by its name under `/.miniftp/`: its content type and bytes.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "page.css" => Some(("text/css; charset=utf-8", include_str!("assets/page.css"))),
        "page.js" => Some((
            "text/javascript; charset=utf-8",
            include_str!("assets/page.js"),
        )),
        "blake3.js" => Some((
            "text/javascript; charset=utf-8",
            include_str!("assets/blake3.js"),
        )),
        _ => None,
    }
}
