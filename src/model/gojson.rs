//! Go's `encoding/json` (go1.19, which Debian's registry 2.8.2 is built with), as far as the
//! registry's manifest structs need it: the syntax check that runs before every decode (same error
//! texts, the 10000 nesting limit), string unquoting (invalid UTF-8 and lone surrogates become
//! U+FFFD), struct keys matched exactly or with Go's case folding (long s and Kelvin sign
//! included), and decoding *into* existing values (a duplicated key overwrites field by field,
//! `null` leaves strings, numbers and structs alone, a repeated array reuses the old elements).
//! No crate reproduces these rules; see docs/design.md. No recursion on the input's nesting, no
//! panics on any input.

use std::borrow::Cow;

/// Go's `maxNestingDepth`: more nested arrays/objects than this is a syntax error.
pub const MAX_DEPTH: usize = 10_000;

const EOF: &str = "unexpected end of JSON input";

/// Bytes that passed Go's `checkValid`; only these can be decoded.
#[derive(Clone, Copy, Debug)]
pub struct Validated<'a>(&'a [u8]);

/// Go's `checkValid`: the whole document must be one JSON value (trailing whitespace only), no
/// deeper than [`MAX_DEPTH`]. The error is Go's `SyntaxError` text.
pub fn check_valid(src: &[u8]) -> Result<Validated<'_>, String> {
    Scanner {
        src,
        pos: 0,
        stack: Vec::new(),
    }
    .run()?;
    Ok(Validated(src))
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Bytes that need no attention inside a string: not a quote, a backslash or a control byte.
const PLAIN: [bool; 256] = {
    let mut t = [true; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = false;
        c += 1;
    }
    t[b'"' as usize] = false;
    t[b'\\' as usize] = false;
    t
};

/// How many bytes at the start of `s` are plain string content. Eight bytes at a time while none
/// of them needs attention (strings are most of a manifest's bytes), then byte by byte.
fn plain_run(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        if control | zero_byte(x ^ (ONES * b'"' as u64)) | zero_byte(x ^ (ONES * b'\\' as u64)) != 0
        {
            break;
        }
        i += 8;
    }
    i + s[i..]
        .iter()
        .position(|&c| !PLAIN[c as usize])
        .unwrap_or(s.len() - i)
}

/// Go's `quoteChar`: the byte as a rune, `strconv.Quote`d, in single quotes.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        b'\\' => r"'\\'".to_string(),
        7 => r"'\a'".to_string(),
        8 => r"'\b'".to_string(),
        0x0c => r"'\f'".to_string(),
        b'\n' => r"'\n'".to_string(),
        b'\r' => r"'\r'".to_string(),
        b'\t' => r"'\t'".to_string(),
        0x0b => r"'\v'".to_string(),
        0..=0x1f | 0x7f => format!(r"'\x{c:02x}'"),
        // strconv.IsPrint: Latin-1 letters and symbols print, C1 controls, NBSP and SHY do not.
        0x80..=0xa0 | 0xad => format!(r"'\u{:04x}'", c),
        _ => format!("'{}'", char::from(c)),
    }
}

fn syntax(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Object,
    Array,
}

/// A structured re-statement of Go's byte-at-a-time scanner: it fails at the same byte with the
/// same text. At end of input Go feeds one space to the scanner, so a truncated literal, number
/// or escape reports `invalid character ' ' ...`, anything else `unexpected end of JSON input`.
struct Scanner<'a> {
    src: &'a [u8],
    pos: usize,
    stack: Vec<Open>,
}

impl Scanner<'_> {
    fn ws(&mut self) {
        while self.src.get(self.pos).is_some_and(|&c| is_space(c)) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// The next byte, or the space Go feeds at end of input.
    fn next_or_space(&self) -> u8 {
        self.peek().unwrap_or(b' ')
    }

    fn push(&mut self, c: u8, open: Open) -> Result<(), String> {
        self.stack.push(open);
        if self.stack.len() > MAX_DEPTH {
            return Err(syntax(c, "exceeded max depth"));
        }
        self.pos += 1;
        Ok(())
    }

    fn run(&mut self) -> Result<(), String> {
        'value: loop {
            self.ws();
            let Some(c) = self.peek() else {
                return Err(EOF.into());
            };
            match c {
                b'{' => {
                    self.push(c, Open::Object)?;
                    self.ws();
                    match self.peek() {
                        None => return Err(EOF.into()),
                        Some(b'}') => {
                            self.pos += 1;
                            self.stack.pop();
                        }
                        Some(b'"') => {
                            self.key()?;
                            continue 'value;
                        }
                        Some(c) => {
                            return Err(syntax(c, "looking for beginning of object key string"))
                        }
                    }
                }
                b'[' => {
                    self.push(c, Open::Array)?;
                    self.ws();
                    match self.peek() {
                        None => return Err(EOF.into()),
                        Some(b']') => {
                            self.pos += 1;
                            self.stack.pop();
                        }
                        Some(_) => continue 'value,
                    }
                }
                b'"' => self.string()?,
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => return Err(syntax(c, "looking for beginning of value")),
            }
            // A value is complete: close containers until the next value starts.
            loop {
                self.ws();
                let Some(&open) = self.stack.last() else {
                    return match self.peek() {
                        None => Ok(()),
                        Some(c) => Err(syntax(c, "after top-level value")),
                    };
                };
                let Some(c) = self.peek() else {
                    return Err(EOF.into());
                };
                match (open, c) {
                    (Open::Object, b',') => {
                        self.pos += 1;
                        self.ws();
                        match self.peek() {
                            None => return Err(EOF.into()),
                            Some(b'"') => {
                                self.key()?;
                                continue 'value;
                            }
                            Some(c) => {
                                return Err(syntax(c, "looking for beginning of object key string"))
                            }
                        }
                    }
                    (Open::Array, b',') => {
                        self.pos += 1;
                        continue 'value;
                    }
                    (Open::Object, b'}') | (Open::Array, b']') => {
                        self.pos += 1;
                        self.stack.pop();
                    }
                    (Open::Object, c) => return Err(syntax(c, "after object key:value pair")),
                    (Open::Array, c) => return Err(syntax(c, "after array element")),
                }
            }
        }
    }

    /// A key string and the `:` after it.
    fn key(&mut self) -> Result<(), String> {
        self.string()?;
        self.ws();
        match self.peek() {
            None => Err(EOF.into()),
            Some(b':') => {
                self.pos += 1;
                Ok(())
            }
            Some(c) => Err(syntax(c, "after object key")),
        }
    }

    fn string(&mut self) -> Result<(), String> {
        self.pos += 1;
        loop {
            self.pos += plain_run(&self.src[self.pos.min(self.src.len())..]);
            let Some(c) = self.peek() else {
                return Err(EOF.into());
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(()),
                b'\\' => {
                    let e = self.next_or_space();
                    match e {
                        b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => self.pos += 1,
                        b'u' => {
                            self.pos += 1;
                            for _ in 0..4 {
                                let h = self.next_or_space();
                                if !h.is_ascii_hexdigit() {
                                    return Err(syntax(h, r"in \u hexadecimal character escape"));
                                }
                                self.pos += 1;
                            }
                        }
                        _ => return Err(syntax(e, "in string escape code")),
                    }
                }
                0..=0x1f => return Err(syntax(c, "in string literal")),
                _ => {}
            }
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn number(&mut self) -> Result<(), String> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
            let c = self.next_or_space();
            if !c.is_ascii_digit() {
                return Err(syntax(c, "in numeric literal"));
            }
        }
        if self.peek() == Some(b'0') {
            self.pos += 1;
        } else {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let c = self.next_or_space();
            if !c.is_ascii_digit() {
                return Err(syntax(c, "after decimal point in numeric literal"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            let c = self.next_or_space();
            if !c.is_ascii_digit() {
                return Err(syntax(c, "in exponent of numeric literal"));
            }
            self.digits();
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), String> {
        let name = std::str::from_utf8(word).unwrap_or("");
        self.pos += 1;
        for &want in &word[1..] {
            let c = self.next_or_space();
            if c != want {
                return Err(syntax(
                    c,
                    &format!("in literal {name} (expecting '{}')", char::from(want)),
                ));
            }
            self.pos += 1;
        }
        Ok(())
    }
}

/// Go's `unquoteBytes` on the text between the quotes of a validated string: escapes decoded, a
/// lone or mismatched surrogate escape and every byte of invalid UTF-8 each become U+FFFD.
pub fn unquote(inner: &[u8]) -> Cow<'_, str> {
    if !inner.contains(&b'\\') {
        return lossy_go(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut r = 0;
    while r < inner.len() {
        let c = inner[r];
        if c != b'\\' {
            // Copy up to the next escape, replacing invalid UTF-8 byte by byte as Go does.
            let end = inner[r..]
                .iter()
                .position(|&b| b == b'\\')
                .map_or(inner.len(), |i| r + i);
            out.push_str(&lossy_go(&inner[r..end]));
            r = end;
            continue;
        }
        let e = inner.get(r + 1).copied().unwrap_or(b'\\');
        r += 2;
        match e {
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let hi = u4(inner, r - 2).unwrap_or(0xfffd);
                r += 4;
                let ch = if (0xd800..0xe000).contains(&hi) {
                    match u4(inner, r) {
                        Some(lo) if hi < 0xdc00 && (0xdc00..0xe000).contains(&lo) => {
                            r += 6;
                            char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))
                        }
                        _ => None,
                    }
                } else {
                    char::from_u32(hi)
                };
                out.push(ch.unwrap_or('\u{fffd}'));
            }
            other => out.push(char::from(other)),
        }
    }
    Cow::Owned(out)
}

/// `\uXXXX` at `at` as a code unit.
fn u4(s: &[u8], at: usize) -> Option<u32> {
    let esc = s.get(at..at + 6)?;
    if esc[0] != b'\\' || esc[1] != b'u' {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(&esc[2..]).ok()?, 16).ok()
}

/// Invalid UTF-8 the way Go's `utf8.DecodeRune` walks it: one U+FFFD per bad byte (Rust's
/// `from_utf8_lossy` replaces a maximal bad sequence once, which can differ).
fn lossy_go(mut b: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(b) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(b.len() + 8);
    loop {
        match std::str::from_utf8(b) {
            Ok(s) => {
                out.push_str(s);
                return Cow::Owned(out);
            }
            Err(e) => {
                let good = e.valid_up_to();
                out.push_str(std::str::from_utf8(&b[..good]).unwrap_or_default());
                out.push('\u{fffd}');
                b = &b[good + 1..];
            }
        }
    }
}

/// Go's `foldFunc` for an ASCII field name, applied to a key: letters match either case, other
/// bytes exactly, and when the name has an `s` or `k`, the key may spell it `ſ` (U+017F) or `K`
/// (U+212A, Kelvin sign) — the only non-ASCII runes that fold to ASCII letters.
pub fn fold_matches(name: &str, key: &[u8]) -> bool {
    let name = name.as_bytes();
    debug_assert!(name.is_ascii(), "registry field names are ASCII");
    // A folded key is as long as the name, or longer by the extra bytes of ſ (2) and K (3).
    if key.len() < name.len() || key.len() > name.len() * 3 {
        return false;
    }
    let mut non_letter = false;
    let mut special = false;
    for &b in name {
        let upper = b & !0x20;
        if !upper.is_ascii_uppercase() {
            non_letter = true;
        } else if upper == b'K' || upper == b'S' {
            special = true;
        }
    }
    if special {
        equal_fold_right(name, key)
    } else if non_letter {
        name.len() == key.len()
            && name
                .iter()
                .zip(key)
                .all(|(&s, &t)| s == t || (s.is_ascii_alphabetic() && (s & !0x20) == (t & !0x20)))
    } else {
        name.len() == key.len()
            && name
                .iter()
                .zip(key)
                .all(|(&s, &t)| (s & !0x20) == (t & !0x20))
    }
}

fn equal_fold_right(name: &[u8], mut t: &[u8]) -> bool {
    for &s in name {
        let Some(&tb) = t.first() else {
            return false;
        };
        if tb < 0x80 {
            if s != tb {
                let upper = s & !0x20;
                if !upper.is_ascii_uppercase() || upper != tb & !0x20 {
                    return false;
                }
            }
            t = &t[1..];
            continue;
        }
        let want: &[u8] = match s {
            b's' | b'S' => "\u{17f}".as_bytes(),
            b'k' | b'K' => "\u{212a}".as_bytes(),
            _ => return false,
        };
        if !t.starts_with(want) {
            return false;
        }
        t = &t[want.len()..];
    }
    t.is_empty()
}

/// A Go struct as `encoding/json` sees it: its fields' JSON names in declaration order (embedded
/// structs' fields promoted in place, shadowed ones left out), and its names for error texts.
#[derive(Debug)]
pub struct GoStruct {
    /// `reflect.Type.Name()`, e.g. `Descriptor`.
    pub name: &'static str,
    /// `reflect.Type.String()`, e.g. `distribution.Descriptor`.
    pub go_type: &'static str,
    pub fields: &'static [&'static str],
    /// Keys regfsck reads for its own reports although the registry's struct lacks them (Go
    /// skips them): matched like fields, numbered after them, handed over raw, never checked.
    pub extra: &'static [&'static str],
}

impl GoStruct {
    /// The field a key sets: an exact name first, else the first that folds to it.
    pub fn field(&self, key: &[u8]) -> Option<usize> {
        find(self.fields, key)
    }
}

fn find(names: &[&str], key: &[u8]) -> Option<usize> {
    names
        .iter()
        .position(|f| f.as_bytes() == key)
        .or_else(|| names.iter().position(|f| fold_matches(f, key)))
}

/// A Go slice: `len` elements in use out of a backing array whose length is the capacity.
/// Go decodes a repeated array into the old elements and keeps stale ones past `len` for reuse.
#[derive(Debug)]
pub struct GoSlice<T> {
    backing: Vec<T>,
    len: usize,
    nil: bool,
}

impl<T> Default for GoSlice<T> {
    fn default() -> Self {
        GoSlice {
            backing: Vec::new(),
            len: 0,
            nil: true,
        }
    }
}

impl<T> GoSlice<T> {
    pub fn as_slice(&self) -> &[T] {
        &self.backing[..self.len.min(self.backing.len())]
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_nil(&self) -> bool {
        self.nil
    }
}

/// Decoding stopped at the first type error (kept in the decoder). Go records only its first
/// error too and the registry discards the half-filled value, so nothing after it matters.
#[derive(Debug)]
pub struct Stop;

pub type Step = Result<(), Stop>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

impl Tok {
    fn go_name(self) -> &'static str {
        match self {
            Tok::Object => "object",
            Tok::Array => "array",
            Tok::String => "string",
            Tok::Number => "number",
            Tok::Bool => "bool",
            Tok::Null => "null",
        }
    }
}

impl<'a> Validated<'a> {
    /// `json.Unmarshal` into whatever `top` decodes; the error is Go's text.
    pub fn unmarshal(&self, top: impl FnOnce(&mut Decoder<'a>) -> Step) -> Result<(), String> {
        let mut d = Decoder {
            src: self.0,
            pos: 0,
            err: None,
            ctx_struct: "",
            ctx_fields: Vec::new(),
        };
        match top(&mut d) {
            Ok(()) => Ok(()),
            Err(Stop) => Err(d
                .err
                .unwrap_or_else(|| "json: decoder out of sync".to_string())),
        }
    }

    /// The first number that does not fit a float64 (what decoding the document into
    /// `map[string]interface{}` fails on), in document order.
    pub fn first_float_overflow(&self) -> Option<&'a str> {
        let src = self.0;
        let mut i = 0;
        while i < src.len() {
            match src[i] {
                b'"' => i = string_end(src, i),
                b'-' | b'0'..=b'9' => {
                    let end = literal_end(src, i);
                    let lit = std::str::from_utf8(&src[i..end]).unwrap_or("0");
                    if lit.parse::<f64>().is_ok_and(f64::is_infinite) {
                        return Some(lit);
                    }
                    i = end;
                }
                _ => i += 1,
            }
        }
        None
    }
}

/// Index just past the string starting with the quote at `start`.
fn string_end(src: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < src.len() {
        i += plain_run(&src[i..]);
        match src.get(i) {
            Some(b'"') => return i + 1,
            Some(b'\\') => i += 2,
            Some(_) => i += 1,
            None => break,
        }
    }
    src.len()
}

/// Index just past the number or bare word starting at `start`.
fn literal_end(src: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < src.len() && (src[i].is_ascii_alphanumeric() || matches!(src[i], b'-' | b'+' | b'.'))
    {
        i += 1;
    }
    i
}

/// Decodes validated JSON into Rust mirrors of Go structs with Go's rules, keeping Go's error
/// context (the innermost struct and the field path) for its `UnmarshalTypeError` text.
pub struct Decoder<'a> {
    src: &'a [u8],
    pos: usize,
    err: Option<String>,
    ctx_struct: &'static str,
    ctx_fields: Vec<&'static str>,
}

impl<'a> Decoder<'a> {
    fn ws(&mut self) {
        while self.src.get(self.pos).is_some_and(|&c| is_space(c)) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Tok {
        self.ws();
        match self.src.get(self.pos) {
            Some(b'{') => Tok::Object,
            Some(b'[') => Tok::Array,
            Some(b'"') => Tok::String,
            Some(b't' | b'f') => Tok::Bool,
            Some(b'n') => Tok::Null,
            _ => Tok::Number,
        }
    }

    /// Only reachable if the input was not validated: stop rather than misread.
    fn out_of_sync(&mut self) -> Stop {
        self.err
            .get_or_insert_with(|| "json: decoder out of sync".to_string());
        Stop
    }

    fn expect(&mut self, c: u8) -> Step {
        self.ws();
        if self.src.get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.out_of_sync())
        }
    }

    /// Go's `UnmarshalTypeError` text, with the current struct and field path when there is one.
    fn type_error(&mut self, value: &str, ty: &str) -> Stop {
        let msg = if self.ctx_struct.is_empty() && self.ctx_fields.is_empty() {
            format!("json: cannot unmarshal {value} into Go value of type {ty}")
        } else {
            format!(
                "json: cannot unmarshal {value} into Go struct field {}.{} of type {ty}",
                self.ctx_struct,
                self.ctx_fields.join(".")
            )
        };
        self.err.get_or_insert(msg);
        Stop
    }

    /// The value ahead has the wrong JSON type for `ty`.
    fn mismatch(&mut self, ty: &str) -> Stop {
        let tok = self.peek();
        self.type_error(tok.go_name(), ty)
    }

    /// Skip one value (any depth, no recursion).
    pub fn skip(&mut self) {
        self.ws();
        let src = self.src;
        match src.get(self.pos) {
            Some(b'"') => self.pos = string_end(src, self.pos),
            Some(b'{' | b'[') => {
                // Inside a container only strings and brackets matter.
                let mut depth = 0usize;
                while let Some(&c) = src.get(self.pos) {
                    self.pos += 1;
                    match c {
                        b'"' => self.pos = string_end(src, self.pos - 1),
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return;
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some(_) => self.pos = literal_end(src, self.pos).max(self.pos + 1),
            None => {}
        }
    }

    /// Skip one value and hand it over whole (it is valid JSON on its own).
    pub fn raw_value(&mut self) -> Validated<'a> {
        self.ws();
        let start = self.pos;
        self.skip();
        Validated(&self.src[start..self.pos.max(start)])
    }

    /// The raw text between the quotes of the string ahead.
    fn raw_string(&mut self) -> Result<&'a [u8], Stop> {
        self.ws();
        if self.src.get(self.pos) != Some(&b'"') {
            return Err(self.out_of_sync());
        }
        let start = self.pos + 1;
        self.pos = string_end(self.src, self.pos);
        Ok(&self.src[start..self.pos.saturating_sub(1).max(start)])
    }

    fn null(&mut self) {
        self.pos = literal_end(self.src, self.pos);
    }

    /// The start of a container of kind `want` for a Go value of type `ty`: true with the bracket
    /// consumed, false for a (consumed) null, else Go's type error.
    fn open(&mut self, want: Tok, ty: &str) -> Result<bool, Stop> {
        match self.peek() {
            Tok::Null => {
                self.null();
                Ok(false)
            }
            tok if tok == want => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.mismatch(ty)),
        }
    }

    /// A Go string (or string type such as `digest.Digest`): null keeps the old value.
    pub fn string(&mut self, out: &mut Cow<'a, str>, ty: &str) -> Step {
        match self.peek() {
            Tok::String => {
                *out = unquote(self.raw_string()?);
                Ok(())
            }
            Tok::Null => {
                self.null();
                Ok(())
            }
            _ => Err(self.mismatch(ty)),
        }
    }

    /// A string field whose value regfsck does not need: only its type is checked.
    pub fn check_string(&mut self, ty: &str) -> Step {
        match self.peek() {
            Tok::String => self.raw_string().map(drop),
            Tok::Null => {
                self.null();
                Ok(())
            }
            _ => Err(self.mismatch(ty)),
        }
    }

    /// A Go `int`/`int64`: `strconv.ParseInt(s, 10, 64)`, so no fraction, no exponent, no
    /// overflow (`1.0`, `1e3`, `9223372036854775808` fail); null keeps the old value.
    pub fn int(&mut self, out: &mut i64, ty: &str) -> Step {
        match self.peek() {
            Tok::Number => {
                let end = literal_end(self.src, self.pos);
                let lit = std::str::from_utf8(&self.src[self.pos..end]).unwrap_or("");
                let parsed = if lit.bytes().all(|b| b == b'-' || b.is_ascii_digit()) {
                    lit.parse::<i64>().ok()
                } else {
                    None
                };
                match parsed {
                    Some(n) => {
                        *out = n;
                        self.pos = end;
                        Ok(())
                    }
                    None => Err(self.type_error(&format!("number {lit}"), ty)),
                }
            }
            Tok::Null => {
                self.null();
                Ok(())
            }
            _ => Err(self.mismatch(ty)),
        }
    }

    /// `int` above into a value that also says whether any number was decoded (Go's zero value
    /// and an absent key look the same; regfsck's reports tell them apart).
    pub fn opt_int(&mut self, out: &mut Option<i64>, ty: &str) -> Step {
        let mut n = out.unwrap_or(0);
        let number = self.peek() == Tok::Number;
        self.int(&mut n, ty)?;
        if number {
            *out = Some(n);
        }
        Ok(())
    }

    /// A Go slice: null makes it nil; an array is decoded into the existing elements (growing
    /// the backing array as `reflect` does: +50 %, at least 4), then truncated; an empty array
    /// makes a fresh empty, non-nil slice.
    pub fn slice<T: Default>(
        &mut self,
        s: &mut GoSlice<T>,
        ty: &str,
        mut elem: impl FnMut(&mut Self, &mut T) -> Step,
    ) -> Step {
        if !self.open(Tok::Array, ty)? {
            *s = GoSlice::default();
            return Ok(());
        }
        let mut i = 0;
        loop {
            self.ws();
            if self.src.get(self.pos) == Some(&b']') {
                self.pos += 1;
                break;
            }
            if i >= s.backing.len() {
                let cap = s.backing.len();
                let new_cap = (cap + cap / 2).max(4);
                let mut grown = Vec::with_capacity(new_cap);
                let keep = s.len.min(cap);
                grown.extend(s.backing.drain(..keep));
                grown.resize_with(new_cap, T::default);
                s.backing = grown;
            }
            if i >= s.len {
                s.len = i + 1;
            }
            elem(self, &mut s.backing[i])?;
            i += 1;
            self.ws();
            if self.src.get(self.pos) == Some(&b',') {
                self.pos += 1;
            }
        }
        s.nil = false;
        if i < s.len {
            s.len = i;
        }
        if i == 0 {
            s.backing = Vec::new();
            s.len = 0;
        }
        Ok(())
    }

    /// A `map[string]<string type>` whose contents regfsck does not need: null or an object
    /// whose every value is a string or null.
    pub fn check_string_map(&mut self, ty: &str, elem_ty: &str) -> Step {
        if !self.open(Tok::Object, ty)? {
            return Ok(());
        }
        loop {
            self.ws();
            if self.src.get(self.pos) == Some(&b'}') {
                self.pos += 1;
                return Ok(());
            }
            self.raw_string()?;
            self.expect(b':')?;
            self.check_string(elem_ty)?;
            self.ws();
            if self.src.get(self.pos) == Some(&b',') {
                self.pos += 1;
            }
        }
    }

    /// A Go struct (or pointer to one): null leaves it as it is (a pointer would become nil,
    /// which no caller stores); each member whose key names a field goes to `field` with that
    /// field's index (an `extra` key with its index after the fields, for `raw_value`), any other
    /// member is skipped whatever it holds.
    pub fn object(
        &mut self,
        st: &GoStruct,
        mut field: impl FnMut(&mut Self, usize) -> Step,
    ) -> Step {
        if !self.open(Tok::Object, st.go_type)? {
            return Ok(());
        }
        let outer_struct = self.ctx_struct;
        let outer_len = self.ctx_fields.len();
        loop {
            self.ws();
            if self.src.get(self.pos) == Some(&b'}') {
                self.pos += 1;
                return Ok(());
            }
            let raw = self.raw_string()?;
            self.expect(b':')?;
            // Without escapes the raw bytes match exactly what Go's unquoted key would: invalid
            // UTF-8, which Go turns into U+FFFD, matches no field either way.
            let key = if raw.contains(&b'\\') {
                Cow::Owned(unquote(raw).into_owned().into_bytes())
            } else {
                Cow::Borrowed(raw)
            };
            match st.field(&key) {
                Some(i) => {
                    self.ctx_fields.push(st.fields[i]);
                    self.ctx_struct = st.name;
                    field(self, i)?;
                    self.ctx_fields.truncate(outer_len);
                    self.ctx_struct = outer_struct;
                }
                None => match find(st.extra, &key) {
                    Some(j) => field(self, st.fields.len() + j)?,
                    None => self.skip(),
                },
            }
            self.ws();
            if self.src.get(self.pos) == Some(&b',') {
                self.pos += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
