//! The HTML of the page: a directory's listing and the login form,
//! rendered on the server so that browsing and downloading need no
//! JavaScript (the script only adds uploads, rename, delete, a live
//! filter). Every name is escaped here, once, on its way into the HTML.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::download::civil_from_days;
use super::path::url_of;
use crate::operation::{Entry, EntryKind};

/// Escapes text for HTML, in content and in quoted attributes alike.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// How the listing is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// By name (the default).
    Name,
    /// By size.
    Size,
    /// By modification time.
    Modified,
}

impl SortKey {
    /// The key a query names (`sort=size`), the name by default.
    pub fn parse(text: Option<&str>) -> SortKey {
        match text {
            Some("size") => SortKey::Size,
            Some("modified") => SortKey::Modified,
            _ => SortKey::Name,
        }
    }

    fn word(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Size => "size",
            SortKey::Modified => "modified",
        }
    }
}

/// What the page around a listing shows.
pub struct Context<'a> {
    /// The directory's virtual path.
    pub path: &'a str,
    /// Who is logged in.
    pub user: Option<&'a str>,
    /// Whether the server has accounts (a login link then).
    pub accounts: bool,
    /// Whether this caller may change the tree (upload, rename, delete).
    pub writable: bool,
    /// The caller's CSRF token.
    pub csrf: &'a str,
    /// The order asked for.
    pub sort: SortKey,
    /// Descending rather than ascending.
    pub descending: bool,
    /// The filter asked for (`q=`), applied on the server too.
    pub filter: &'a str,
    /// The page's upload chunk size.
    pub chunk_size: u64,
}

/// Sizes as people read them.
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if size < 1024 {
        return format!("{size} B");
    }
    let mut value = size as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A time as `YYYY-MM-DD HH:MM` (UTC).
pub fn short_time(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let rest = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest / 60 % 60
    )
}

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · miniftp</title>\
         <link rel=\"stylesheet\" href=\"/.miniftp/page.css\">\
         <script src=\"/.miniftp/blake3.js\" defer></script>\
         <script src=\"/.miniftp/page.js\" defer></script></head>\n",
        escape(title)
    );
}

/// The listing page of a directory.
pub fn listing(context: &Context, mut entries: Vec<Entry>) -> String {
    let filter = context.filter.to_lowercase();
    if !filter.is_empty() {
        entries.retain(|entry| entry.name.to_lowercase().contains(&filter));
    }
    entries.sort_by(|a, b| {
        let order = match context.sort {
            SortKey::Name => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Modified => a.modified.cmp(&b.modified),
        }
        .then_with(|| a.name.cmp(&b.name));
        let order = if context.descending {
            order.reverse()
        } else {
            order
        };
        b.is_directory().cmp(&a.is_directory()).then(order)
    });
    let mut out = String::with_capacity(4096 + entries.len() * 400);
    head(&mut out, context.path);
    let _ = write!(
        out,
        "<body data-csrf=\"{}\" data-writable=\"{}\" data-chunk=\"{}\">\n<header>\
         <nav class=\"crumbs\" aria-label=\"Path\"><a href=\"/\">miniftp</a>",
        escape(context.csrf),
        context.writable,
        context.chunk_size
    );
    let names: Vec<&str> = context
        .path
        .split('/')
        .filter(|name| !name.is_empty())
        .collect();
    for (index, name) in names.iter().enumerate() {
        let url = url_of(&names[..=index].join("/"), true);
        match index + 1 == names.len() {
            true => {
                let _ = write!(
                    out,
                    "<span>/</span><span aria-current=\"page\">{}</span>",
                    escape(name)
                );
            }
            false => {
                let _ = write!(
                    out,
                    "<span>/</span><a href=\"{}\">{}</a>",
                    escape(&url),
                    escape(name)
                );
            }
        }
    }
    out.push_str("</nav><div class=\"who\">");
    match (context.user, context.accounts) {
        (Some(user), _) => {
            let _ = write!(
                out,
                "<span>{}</span><form method=\"post\" action=\"/.miniftp/logout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\" class=\"link\">Log out</button></form>",
                escape(user),
                escape(context.csrf)
            );
        }
        (None, true) => {
            let _ = write!(
                out,
                "<a href=\"/.miniftp/login?next={}\">Log in</a>",
                escape(&super::path::encode_segment(&url_of(context.path, true)))
            );
        }
        (None, false) => {}
    }
    out.push_str("</div></header>\n<main>\n");
    let _ = write!(
        out,
        "<form class=\"filter\" method=\"get\" role=\"search\">\
         <input type=\"search\" name=\"q\" id=\"filter\" value=\"{}\" placeholder=\"Filter by name\" aria-label=\"Filter by name\">\
         <input type=\"hidden\" name=\"sort\" value=\"{}\">\
         <noscript><button type=\"submit\">Filter</button></noscript></form>",
        escape(context.filter),
        context.sort.word()
    );
    out.push('\n');
    if context.writable {
        let _ = write!(
            out,
            "<section class=\"tools\" id=\"tools\">\
             <label class=\"button\" id=\"pick\" hidden>Upload files\
             <input type=\"file\" id=\"file-input\" multiple></label>\
             <span class=\"hint\" id=\"drop-hint\" hidden>or drop files anywhere on the page</span>\
             <form method=\"post\" action=\"?mkdir\" class=\"mkdir\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input name=\"name\" placeholder=\"New folder\" aria-label=\"New folder name\" required>\
             <button type=\"submit\">Create folder</button></form>\
             <ul id=\"progress\" aria-live=\"polite\"></ul></section>",
            escape(context.csrf)
        );
        out.push('\n');
    }
    out.push_str("<table id=\"listing\"><thead><tr>");
    for (key, label, class) in [
        (SortKey::Name, "Name", "name"),
        (SortKey::Size, "Size", "size"),
        (SortKey::Modified, "Modified", "modified"),
    ] {
        let descending = key == context.sort && !context.descending;
        let arrow = match (key == context.sort, context.descending) {
            (true, false) => " ▲",
            (true, true) => " ▼",
            (false, _) => "",
        };
        let _ = write!(
            out,
            "<th class=\"{class}\"><a href=\"?sort={}&amp;order={}\">{label}{arrow}</a></th>",
            key.word(),
            if descending { "desc" } else { "asc" }
        );
    }
    out.push_str("<th class=\"actions\"><span class=\"visually-hidden\">Actions</span></th></tr></thead>\n<tbody>\n");
    if !names.is_empty() {
        let parent = url_of(&names[..names.len() - 1].join("/"), true);
        let _ = writeln!(
            out,
            "<tr class=\"up\"><td class=\"name\"><a href=\"{}\">↑ Parent folder</a></td><td></td><td></td><td></td></tr>",
            escape(&parent)
        );
    }
    let (mut folders, mut files) = (0, 0);
    for entry in &entries {
        let child = format!("{}/{}", context.path.trim_end_matches('/'), entry.name);
        let directory = entry.kind == EntryKind::Directory;
        let url = escape(&url_of(&child, directory));
        let name = escape(&entry.name);
        let modified = entry.modified.map(short_time).unwrap_or_default();
        let modified_key = entry
            .modified
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |duration| duration.as_secs());
        let _ = write!(
            out,
            "<tr data-name=\"{name}\" data-kind=\"{}\"><td class=\"name\"><a href=\"{url}\" class=\"{}\">{name}{}</a></td>",
            if directory { "folder" } else { "file" },
            if directory { "folder" } else { "file" },
            if directory { "/" } else { "" },
        );
        match directory {
            true => {
                folders += 1;
                out.push_str("<td class=\"size\">—</td>");
            }
            false => {
                files += 1;
                let _ = write!(
                    out,
                    "<td class=\"size\" title=\"{} bytes\">{}</td>",
                    entry.size,
                    human_size(entry.size)
                );
            }
        }
        let _ = write!(
            out,
            "<td class=\"modified\" data-time=\"{modified_key}\">{modified}</td><td class=\"actions\">"
        );
        match directory {
            true => {
                let _ = write!(
                    out,
                    "<a href=\"{url}?zip\" class=\"zip\" title=\"Download as zip\">zip</a>"
                );
            }
            false => {
                let _ = write!(
                    out,
                    "<a href=\"{url}?download\" class=\"download\" title=\"Download\" download>download</a>"
                );
            }
        }
        if context.writable {
            out.push_str(
                "<button type=\"button\" class=\"rename\" hidden>Rename</button>\
                 <button type=\"button\" class=\"delete\" hidden>Delete</button>",
            );
        }
        out.push_str("</td></tr>\n");
    }
    let _ = write!(
        out,
        "</tbody></table>\n<p class=\"count\">{folders} folder{}, {files} file{}{}</p>\n</main>\n</body></html>\n",
        if folders == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" },
        if filter.is_empty() {
            ""
        } else {
            " match the filter"
        }
    );
    out
}

/// The login form; `message` says why it is shown again.
pub fn login(next: &str, csrf: &str, message: Option<&str>) -> String {
    let mut out = String::new();
    head(&mut out, "Log in");
    let _ = write!(
        out,
        "<body class=\"login\"><main><h1>miniftp</h1>\
         <form method=\"post\" action=\"/.miniftp/login\" class=\"login\">\
         {}<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Name <input name=\"user\" autocomplete=\"username\" required autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Log in</button></form></main></body></html>",
        message.map_or(String::new(), |message| format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(message)
        )),
        escape(csrf),
        escape(next)
    );
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_text_never_markup() {
        let name = "<img src=x onerror=alert(1)>\"'&";
        assert_eq!(
            escape(name),
            "&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"
        );
        let context = Context {
            path: "/",
            user: None,
            accounts: false,
            writable: true,
            csrf: "t",
            sort: SortKey::Name,
            descending: false,
            filter: "",
            chunk_size: 1,
        };
        let entry = Entry {
            name: name.to_owned(),
            kind: EntryKind::File,
            size: 1,
            modified: None,
        };
        let html = listing(&context, vec![entry]);
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(20 << 20), "20.0 MiB");
        let time = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(short_time(time), "2023-11-14 22:13");
    }
}
