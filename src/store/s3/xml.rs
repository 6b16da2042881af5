//! Just enough XML for S3's answers: flat elements by name, repeated blocks, and the five
//! predefined entities plus character references. S3's list and error documents are a fixed,
//! shallow shape; a general XML parser would add a dependency for nothing regfsck reads.

/// The text of the first `<name>…</name>` in `doc`, entities decoded; `None` when absent.
pub fn first(doc: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = doc.find(&open)? + open.len();
    let end = doc[start..].find(&close)? + start;
    Some(unescape(&doc[start..end]))
}

/// Every `<name>…</name>` block's inside, in order (not nested in one another).
pub fn blocks<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(s) = doc[at..].find(&open) {
        let start = at + s + open.len();
        let Some(e) = doc[start..].find(&close) else {
            break;
        };
        out.push(&doc[start..start + e]);
        at = start + e + close.len();
    }
    out
}

pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let ent = &rest[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text for an element of a request body (the completion of a multipart upload).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_blocks_and_entities() {
        let doc = "<R><Contents><Key>a&amp;b</Key><ETag>&quot;x&quot;</ETag></Contents><Contents><Key>&#x41;&#66;&bogus;</Key></Contents><IsTruncated>false</IsTruncated></R>";
        let b = blocks(doc, "Contents");
        assert_eq!(b.len(), 2);
        assert_eq!(first(b[0], "Key").unwrap(), "a&b");
        assert_eq!(first(b[0], "ETag").unwrap(), "\"x\"");
        assert_eq!(first(b[1], "Key").unwrap(), "AB&bogus;");
        assert_eq!(first(doc, "IsTruncated").unwrap(), "false");
        assert!(first(doc, "Nope").is_none());
        let odd = "\"a&b<c>'d\"";
        assert_eq!(unescape(&escape(odd)), odd);
    }
}
