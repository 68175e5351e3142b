//! The pages, as plain HTML: sign-in, a directory listing with its transfers, and the
//! same folder moved with IBM's HTTP Gateway SDK.

use std::fmt::Write as _;
use std::time::Duration;

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>",
        esc(title)
    )
}

pub(crate) fn login(error: Option<&str>) -> String {
    let mut s = head("Sign in - fallback");
    s.push_str("<body><main class=\"narrow\"><h1>Sign in</h1>");
    if let Some(e) = error {
        let _ = write!(s, "<p class=\"error\" role=\"alert\">{}</p>", esc(e));
    }
    s.push_str(
        "<form method=\"post\" action=\"/login\">\
         <label>User <input name=\"user\" autocomplete=\"username\" required autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form></main></body></html>",
    );
    s
}

/// One entry of a listing.
pub(crate) struct Row {
    pub(crate) name: String,
    /// Docroot-relative, `/a/b`.
    pub(crate) path: String,
    pub(crate) is_dir: bool,
    pub(crate) size: u64,
    pub(crate) modified: String,
    /// Download token for exactly this path.
    pub(crate) token: String,
    pub(crate) fasp: Option<String>,
}

pub(crate) struct Listing<'a> {
    pub(crate) user: &'a str,
    pub(crate) dir: &'a str,
    pub(crate) rows: &'a [Row],
    pub(crate) upload_token: &'a str,
    /// Where the fallback service is: `/aspera/http` or `/aspera/https`.
    pub(crate) base: &'a str,
    pub(crate) token_ttl: Duration,
}

/// Sizes for people: 1.5 MiB.
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1024 * 10 && i < UNITS.len() - 1 {
        v /= 1024;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        // One decimal from the exact value.
        let div = 1u64 << (10 * i);
        format!("{}.{} {}", n / div, (n % div) * 10 / div, UNITS[i])
    }
}

fn link_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub(crate) fn listing(l: &Listing<'_>) -> String {
    let mut s = head(&format!("{} - fallback", l.dir));
    let _ = write!(
        s,
        "<body><header><span>Signed in as <strong>{user}</strong></span>\
         <a href=\"/gateway{dirlink}/\">This folder with IBM's HTTP Gateway SDK</a>\
         <form method=\"post\" action=\"/logout\"><button type=\"submit\" class=\"link\">Sign out</button></form></header>\
         <main id=\"app\" data-base=\"{base}\" data-dir=\"{dir}\" data-upload-token=\"{up}\" data-token-ttl=\"{ttl}\">",
        user = esc(l.user),
        dirlink = link_path(l.dir.trim_end_matches('/')),
        base = esc(l.base),
        dir = esc(l.dir),
        up = esc(l.upload_token),
        ttl = l.token_ttl.as_secs(),
    );
    // Breadcrumbs.
    s.push_str(
        "<nav aria-label=\"Folder\"><ol class=\"crumbs\"><li><a href=\"/browse/\">Home</a></li>",
    );
    let mut acc = String::new();
    for seg in l.dir.split('/').filter(|x| !x.is_empty()) {
        acc.push('/');
        acc.push_str(seg);
        let _ = write!(
            s,
            "<li><a href=\"/browse{}/\">{}</a></li>",
            link_path(&acc),
            esc(seg)
        );
    }
    s.push_str("</ol></nav>");
    // Upload panel.
    s.push_str(
        "<section id=\"drop\" class=\"drop\" aria-label=\"Upload\">\
         <p>Drop files or folders here, or \
         <label class=\"button\">choose files<input id=\"pick-files\" type=\"file\" multiple hidden></label> \
         <label class=\"button\">choose a folder<input id=\"pick-folder\" type=\"file\" webkitdirectory multiple hidden></label></p>\
         <p class=\"hint\">Uploads resume where they stopped: after a reload or a network cut, pick the same files again.</p>\
         </section>\
         <section aria-live=\"polite\"><ul id=\"transfers\" class=\"transfers\"></ul></section>",
    );
    // The listing.
    s.push_str(
        "<table class=\"listing\"><thead><tr><th scope=\"col\">Name</th><th scope=\"col\" class=\"num\">Size</th>\
         <th scope=\"col\">Modified</th><th scope=\"col\"><span class=\"sr-only\">Actions</span></th></tr></thead><tbody>",
    );
    if l.rows.is_empty() {
        s.push_str("<tr><td colspan=\"4\" class=\"empty\">This folder is empty.</td></tr>");
    }
    for r in l.rows {
        let name = if r.is_dir {
            format!(
                "<a class=\"dir\" href=\"/browse{}/\">{}/</a>",
                link_path(&r.path),
                esc(&r.name)
            )
        } else {
            format!("<span class=\"file\">{}</span>", esc(&r.name))
        };
        let fasp = r.fasp.as_deref().map_or_else(String::new, |u| {
            format!(
                "<a class=\"fasp\" href=\"{}\" title=\"Open with a FASP client (falls back to HTTP)\">FASP URL</a>",
                esc(u)
            )
        });
        let _ = write!(
            s,
            "<tr data-path=\"{path}\" data-kind=\"{kind}\" data-size=\"{size}\" data-token=\"{token}\">\
             <td>{name}</td><td class=\"num\">{hsize}</td><td>{modified}</td>\
             <td class=\"actions\"><button type=\"button\" class=\"download\">Download</button> {fasp}</td></tr>",
            path = esc(&r.path),
            kind = if r.is_dir { "dir" } else { "file" },
            size = r.size,
            token = esc(&r.token),
            hsize = if r.is_dir {
                String::new()
            } else {
                human(r.size)
            },
            modified = esc(&r.modified),
        );
    }
    s.push_str("</tbody></table></main><script src=\"/assets/app.js\"></script></body></html>");
    s
}

/// The page that moves files with IBM's HTTP Gateway SDK, unmodified, against this
/// app's own fallbackd (its Gateway API at `/transfers/aspera/http-gwy`).
pub(crate) struct GatewayPage<'a> {
    pub(crate) user: &'a str,
    pub(crate) dir: &'a str,
    /// Files of `dir` (folders too: the Gateway zips them).
    pub(crate) rows: &'a [Row],
    pub(crate) upload_token: &'a str,
    /// A download token for the whole of `dir`.
    pub(crate) download_token: &'a str,
    /// Where the SDK's browser bundle is loaded from.
    pub(crate) sdk_src: &'a str,
}

pub(crate) fn gateway(g: &GatewayPage<'_>) -> String {
    let mut s = head(&format!("{} - IBM HTTP Gateway SDK - fallback", g.dir));
    let _ = write!(
        s,
        "<body><header><span>Signed in as <strong>{user}</strong></span>\
         <a href=\"/browse{dirlink}/\">This folder with fallback's own page</a>\
         <form method=\"post\" action=\"/logout\"><button type=\"submit\" class=\"link\">Sign out</button></form></header>\
         <main id=\"app\" data-gateway=\"/transfers/aspera/http-gwy\" data-user=\"{user}\" data-dir=\"{dir}\" \
         data-upload-token=\"{up}\" data-download-token=\"{down}\">\
         <h1>{dir} <small>with IBM's HTTP Gateway SDK</small></h1>\
         <p class=\"hint\">This page uses <code>@ibm-aspera/http-gateway-sdk-js</code> 7.7.4 as IBM ships it; \
         the only change from an app written for IBM's HTTP Gateway is the server URL, which is this app's \
         fallbackd. Uploads go over a WebSocket, downloads through the browser.</p>\
         <p id=\"gw-state\" role=\"status\">Connecting to the gateway...</p>",
        user = esc(g.user),
        dir = esc(g.dir),
        dirlink = link_path(g.dir.trim_end_matches('/')),
        up = esc(g.upload_token),
        down = esc(g.download_token),
    );
    s.push_str(
        "<section class=\"drop\" aria-label=\"Upload with the SDK\">\
         <p><button type=\"button\" id=\"gw-files\">Choose files</button> \
         <button type=\"button\" id=\"gw-folder\">Choose a folder</button> \
         <button type=\"button\" id=\"gw-upload\" disabled>Upload</button></p>\
         <ul id=\"gw-picked\"></ul></section>\
         <section aria-live=\"polite\"><h2>Transfers</h2><ul id=\"gw-transfers\" class=\"transfers\"></ul></section>\
         <table class=\"listing\"><thead><tr><th scope=\"col\"><span class=\"sr-only\">Pick</span></th>\
         <th scope=\"col\">Name</th><th scope=\"col\" class=\"num\">Size</th></tr></thead><tbody>",
    );
    if g.rows.is_empty() {
        s.push_str("<tr><td colspan=\"3\" class=\"empty\">This folder is empty.</td></tr>");
    }
    for r in g.rows {
        let _ = write!(
            s,
            "<tr data-path=\"{path}\"><td><input type=\"checkbox\" class=\"gw-pick\" value=\"{path}\" \
             aria-label=\"Pick {name}\"></td><td>{name}{slash}</td><td class=\"num\">{size}</td></tr>",
            path = esc(&r.path),
            name = esc(&r.name),
            slash = if r.is_dir { "/" } else { "" },
            size = if r.is_dir {
                String::new()
            } else {
                human(r.size)
            },
        );
    }
    let _ = write!(
        s,
        "</tbody></table><p><button type=\"button\" id=\"gw-download\">Download the picked ones</button> \
         <label class=\"inline\"><input type=\"checkbox\" id=\"gw-zip\"> as one zip</label></p></main>\
         <script src=\"{}\"></script><script src=\"/assets/gateway.js\"></script></body></html>",
        esc(g.sdk_src)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_sizes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(human(0), "0 B");
        assert_eq!(human(10_239), "10239 B");
        assert_eq!(human(50 << 20), "50.0 MiB");
        assert_eq!(human(1536 << 10), "1536.0 KiB");
        assert_eq!(link_path("/a b/é"), "/a%20b/%C3%A9");
    }
}
