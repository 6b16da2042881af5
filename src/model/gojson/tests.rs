//! Go's encoding/json rules, one test per rule; expected texts are go1.19's (most of them also
//! checked end to end against the registry in tests/manifest_fidelity.rs).

use super::*;

fn syntax_err(src: &[u8]) -> String {
    check_valid(src).err().unwrap_or_else(|| "valid".into())
}

#[test]
fn syntax_errors_are_gos() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "unexpected end of JSON input"),
        (b"  \n", "unexpected end of JSON input"),
        (b"{", "unexpected end of JSON input"),
        (b"{\"a\"", "unexpected end of JSON input"),
        (b"{\"a\":1", "unexpected end of JSON input"),
        (b"\"abc", "unexpected end of JSON input"),
        (b"{}x", "invalid character 'x' after top-level value"),
        (b"{} {}", "invalid character '{' after top-level value"),
        (b"01", "invalid character '1' after top-level value"),
        (b"[01]", "invalid character '1' after array element"),
        (
            b"{\"a\":01}",
            "invalid character '1' after object key:value pair",
        ),
        (
            b"[1,]",
            "invalid character ']' looking for beginning of value",
        ),
        (
            b"{,}",
            "invalid character ',' looking for beginning of object key string",
        ),
        (
            b"{\"a\":1,}",
            "invalid character '}' looking for beginning of object key string",
        ),
        (b"{\"a\" 1}", "invalid character '1' after object key"),
        (b"[1 2]", "invalid character '2' after array element"),
        (
            b"tru",
            "invalid character ' ' in literal true (expecting 'e')",
        ),
        (
            b"trUe",
            "invalid character 'U' in literal true (expecting 'u')",
        ),
        (
            b"nul",
            "invalid character ' ' in literal null (expecting 'l')",
        ),
        (
            b"fals",
            "invalid character ' ' in literal false (expecting 'e')",
        ),
        (b"-", "invalid character ' ' in numeric literal"),
        (b"-a", "invalid character 'a' in numeric literal"),
        (
            b"1.",
            "invalid character ' ' after decimal point in numeric literal",
        ),
        (
            b"1.e",
            "invalid character 'e' after decimal point in numeric literal",
        ),
        (
            b"1e",
            "invalid character ' ' in exponent of numeric literal",
        ),
        (
            b"1e+x",
            "invalid character 'x' in exponent of numeric literal",
        ),
        (
            b"+1",
            "invalid character '+' looking for beginning of value",
        ),
        (b"\"\\x\"", "invalid character 'x' in string escape code"),
        (b"\"\\", "invalid character ' ' in string escape code"),
        (
            b"\"\\u12g4\"",
            "invalid character 'g' in \\u hexadecimal character escape",
        ),
        (
            b"\"\\u12",
            "invalid character ' ' in \\u hexadecimal character escape",
        ),
        (b"\"a\tb\"", "invalid character '\\t' in string literal"),
        (b"\"a\x01b\"", "invalid character '\\x01' in string literal"),
        (
            b"\xef\xbb\xbf{}",
            "invalid character '\u{ef}' looking for beginning of value",
        ),
        (
            b"\x80",
            "invalid character '\\u0080' looking for beginning of value",
        ),
        (
            b"\xa0",
            "invalid character '\\u00a0' looking for beginning of value",
        ),
        (
            b"\xad",
            "invalid character '\\u00ad' looking for beginning of value",
        ),
        (
            b"\x7f",
            "invalid character '\\x7f' looking for beginning of value",
        ),
        (
            b"'",
            "invalid character '\\'' looking for beginning of value",
        ),
        (
            b"{\"a\":1}\"",
            "invalid character '\"' after top-level value",
        ),
        (
            b"\\",
            "invalid character '\\\\' looking for beginning of value",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(syntax_err(src), *want, "{:?}", String::from_utf8_lossy(src));
    }
    for ok in [
        &b" {} \t\r\n"[..],
        b"-0",
        b"0.5e-7",
        b"1E+2",
        b"\"\xff\xfe\"",
        b"[[],{}]",
        b"null",
    ] {
        assert!(check_valid(ok).is_ok(), "{:?}", String::from_utf8_lossy(ok));
    }
}

#[test]
fn nesting_limit_is_10000() {
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert!(check_valid(ok.as_bytes()).is_ok());
    let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
    assert_eq!(
        syntax_err(deep.as_bytes()),
        "invalid character '[' exceeded max depth"
    );
    let objects = "{\"a\":".repeat(MAX_DEPTH + 1);
    assert_eq!(
        syntax_err(objects.as_bytes()),
        "invalid character '{' exceeded max depth"
    );
    // Far deeper input is rejected with bounded memory and no recursion.
    let huge = "[".repeat(4 << 20);
    assert!(syntax_err(huge.as_bytes()).contains("exceeded max depth"));
}

#[test]
fn unquote_replaces_what_is_not_utf8() {
    assert_eq!(unquote(b"plain"), "plain");
    assert!(matches!(unquote(b"plain"), Cow::Borrowed(_)));
    assert_eq!(
        unquote(br#"a\"b\\c\/d\b\f\n\r\t"#),
        "a\"b\\c/d\u{8}\u{c}\n\r\t"
    );
    assert_eq!(unquote(br"\u0073ize"), "size");
    assert_eq!(unquote(br"\ud83d\ude00"), "\u{1f600}");
    assert_eq!(unquote(br"\ud800"), "\u{fffd}");
    assert_eq!(unquote(br"\udc00x"), "\u{fffd}x");
    assert_eq!(unquote(br"\ud800\u0041"), "\u{fffd}A");
    assert_eq!(unquote(br"\ud800\ud800\udc00"), "\u{fffd}\u{10000}");
    // One U+FFFD per bad byte, as Go's utf8.DecodeRune walks it.
    assert_eq!(unquote(b"a\xffb"), "a\u{fffd}b");
    assert_eq!(unquote(b"\xf0\x90\x80"), "\u{fffd}\u{fffd}\u{fffd}");
    assert_eq!(unquote(b"\xed\xa0\x80\\n"), "\u{fffd}\u{fffd}\u{fffd}\n");
    assert_eq!(unquote(b"\xc0\x80"), "\u{fffd}\u{fffd}");
}

#[test]
fn fold_rules_are_go_1_19s() {
    // All letters, no k/s: ASCII case only.
    assert!(fold_matches("config", b"CONFIG"));
    assert!(fold_matches("config", b"cOnFiG"));
    assert!(!fold_matches("config", "conf\u{131}g".as_bytes())); // dotless i
    assert!(!fold_matches("config", "\u{212a}onfig".as_bytes()));
    assert!(!fold_matches("config", b"config "));
    // Non-letters must match exactly.
    assert!(fold_matches("v1Compatibility", b"V1COMPATIBILITY"));
    assert!(!fold_matches("v1Compatibility", b"v!Compatibility"));
    // s and k may be written as long s / Kelvin sign; nothing else folds.
    assert!(fold_matches("size", "\u{17f}ize".as_bytes()));
    assert!(fold_matches(
        "schemaVersion",
        "\u{17f}chemaVer\u{17f}ion".as_bytes()
    ));
    assert!(fold_matches(
        "os.version",
        "O\u{17f}.VER\u{17f}ION".as_bytes()
    ));
    assert!(!fold_matches("os.version", b"os_version"));
    assert!(!fold_matches("size", "si\u{17f}e".as_bytes()));
    assert!(!fold_matches("size", "\u{212a}ize".as_bytes()));
    assert!(fold_matches("kind", "\u{212a}ind".as_bytes()));
    assert!(fold_matches("kiss", "\u{212a}i\u{17f}S".as_bytes()));
    assert!(!fold_matches("kiss", "\u{17f}iss".as_bytes()));
    assert!(!fold_matches("digest", "dige\u{17f}".as_bytes()));
    // Exact names win, then the first field that folds.
    let st = GoStruct {
        name: "T",
        go_type: "p.T",
        fields: &["a", "size"],
        extra: &[],
    };
    assert_eq!(st.field(b"size"), Some(1));
    assert_eq!(st.field("SI\u{17f}E".as_bytes()), None); // lengths differ byte-wise: fine, no s at 3
    assert_eq!(st.field("\u{17f}IZE".as_bytes()), Some(1));
    assert_eq!(st.field(b"b"), None);
}

/// A test struct: `{"name": string, "n": int64, "list": []struct{"v": string}, "m": map}`.
#[derive(Default)]
struct T<'a> {
    name: Cow<'a, str>,
    n: i64,
    list: GoSlice<Item<'a>>,
}

#[derive(Default, Debug, PartialEq)]
struct Item<'a> {
    v: Cow<'a, str>,
    w: Cow<'a, str>,
}

const TS: GoStruct = GoStruct {
    name: "T",
    go_type: "pkg.T",
    fields: &["name", "n", "list", "m"],
    extra: &[],
};
const ITEM: GoStruct = GoStruct {
    name: "Item",
    go_type: "pkg.Item",
    fields: &["v", "w"],
    extra: &[],
};

impl<'a> T<'a> {
    fn decode(&mut self, d: &mut Decoder<'a>) -> Step {
        d.object(&TS, |d, i| match i {
            0 => d.string(&mut self.name, "string"),
            1 => d.int(&mut self.n, "int64"),
            2 => d.slice(&mut self.list, "[]pkg.Item", |d, it| {
                d.object(&ITEM, |d, i| match i {
                    0 => d.string(&mut it.v, "string"),
                    _ => d.string(&mut it.w, "string"),
                })
            }),
            _ => d.check_string_map("map[string]string", "string"),
        })
    }
}

fn decode(src: &(impl AsRef<[u8]> + ?Sized)) -> Result<T<'_>, String> {
    let doc = check_valid(src.as_ref())?;
    let mut t = T::default();
    doc.unmarshal(|d| t.decode(d))?;
    Ok(t)
}

fn items(t: &T) -> Vec<(String, String)> {
    t.list
        .as_slice()
        .iter()
        .map(|i| (i.v.to_string(), i.w.to_string()))
        .collect()
}

#[test]
fn duplicates_keep_the_last_value_and_merge_into_the_old_one() {
    let t = decode(r#"{"name":"a","NAME":"b","n":1,"n":2}"#).unwrap();
    assert_eq!((&*t.name, t.n), ("b", 2));
    // null leaves strings and numbers alone.
    let t = decode(r#"{"name":"a","name":null,"n":1,"n":null}"#).unwrap();
    assert_eq!((&*t.name, t.n), ("a", 1));
    // A repeated array is decoded into the old elements, field by field, then truncated.
    let t = decode(r#"{"list":[{"v":"a","w":"1"},{"v":"b"}],"list":[{"v":"c"}]}"#).unwrap();
    assert_eq!(items(&t), vec![("c".into(), "1".into())]);
    // Past the new length the old elements stay in the backing array and come back.
    let t = decode(r#"{"list":[{"v":"a"},{"v":"b"}],"list":[{}],"list":[{},{}]}"#).unwrap();
    assert_eq!(
        items(&t),
        vec![("a".into(), "".into()), ("b".into(), "".into())]
    );
    // Growing past the capacity (4, then 6) copies the old elements and adds zero ones.
    let t = decode(
        r#"{"list":[{"v":"a"},{"v":"b"},{"v":"c"},{"v":"d"}],"list":[{}],"list":[{},{},{},{},{}]}"#,
    )
    .unwrap();
    let v: Vec<String> = items(&t).into_iter().map(|i| i.0).collect();
    assert_eq!(v, ["a", "b", "c", "d", ""]);
    // An empty array is a fresh slice; null a nil one.
    let t = decode(r#"{"list":[{"v":"a"}],"list":[],"list":[{}]}"#).unwrap();
    assert_eq!(items(&t), vec![("".into(), "".into())]);
    let t = decode(r#"{"list":[{"v":"a"}],"list":null}"#).unwrap();
    assert!(t.list.is_nil() && t.list.is_empty());
    let t = decode(r#"{"list":[]}"#).unwrap();
    assert!(!t.list.is_nil() && t.list.is_empty());
    // null for a struct element leaves it as it was.
    let t = decode(r#"{"list":[{"v":"a"}],"list":[null]}"#).unwrap();
    assert_eq!(items(&t), vec![("a".into(), "".into())]);
}

#[test]
fn an_earlier_wrong_type_fails_even_if_a_later_duplicate_is_right() {
    assert_eq!(
        decode(r#"{"n":"1","n":1}"#).err().unwrap(),
        "json: cannot unmarshal string into Go struct field T.n of type int64"
    );
}

#[test]
fn ints_are_parse_int() {
    assert_eq!(decode(r#"{"n":-0}"#).unwrap().n, 0);
    assert_eq!(decode(r#"{"n":-9223372036854775808}"#).unwrap().n, i64::MIN);
    for bad in [
        "1.0",
        "1e3",
        "1E3",
        "9223372036854775808",
        "-9223372036854775809",
        "0.5",
    ] {
        assert_eq!(
            decode(&format!(r#"{{"n":{bad}}}"#)).err().unwrap(),
            format!("json: cannot unmarshal number {bad} into Go struct field T.n of type int64")
        );
    }
}

#[test]
fn type_errors_name_the_struct_and_field_path() {
    let cases = [
        (
            r#"{"name":1}"#,
            "number into Go struct field T.name of type string",
        ),
        (
            r#"{"name":true}"#,
            "bool into Go struct field T.name of type string",
        ),
        (
            r#"{"name":{}}"#,
            "object into Go struct field T.name of type string",
        ),
        (
            r#"{"name":[]}"#,
            "array into Go struct field T.name of type string",
        ),
        (
            r#"{"list":{}}"#,
            "object into Go struct field T.list of type []pkg.Item",
        ),
        (
            r#"{"list":"x"}"#,
            "string into Go struct field T.list of type []pkg.Item",
        ),
        (
            r#"{"list":[1]}"#,
            "number into Go struct field T.list of type pkg.Item",
        ),
        (
            r#"{"list":[{"w":[]}]}"#,
            "array into Go struct field Item.list.w of type string",
        ),
        (
            r#"{"m":[]}"#,
            "array into Go struct field T.m of type map[string]string",
        ),
        (
            r#"{"m":{"k":1}}"#,
            "number into Go struct field T.m of type string",
        ),
        (
            r#"{"m":{"k":{}}}"#,
            "object into Go struct field T.m of type string",
        ),
        ("[]", "array into Go value of type pkg.T"),
        ("\"x\"", "string into Go value of type pkg.T"),
        ("1", "number into Go value of type pkg.T"),
        ("false", "bool into Go value of type pkg.T"),
    ];
    for (src, want) in cases {
        assert_eq!(
            decode(src).err().unwrap(),
            format!("json: cannot unmarshal {want}"),
            "{src}"
        );
    }
}

#[test]
fn null_unknown_fields_and_nesting_in_skipped_values() {
    assert!(decode("null").is_ok());
    let t = decode(r#"{"name":null,"n":null,"list":null,"m":null}"#).unwrap();
    assert!(t.name.is_empty() && t.list.is_nil());
    assert!(decode(r#"{"m":{"a":null,"b":"x"}}"#).is_ok());
    // Unknown keys are skipped whatever they hold; case-variant known keys are not.
    let deep = format!(
        r#"{{"x":{}{},"_n":"s","y":[1e999]}}"#,
        "[".repeat(9999),
        "]".repeat(9999)
    );
    assert!(decode(&deep).is_ok());
    assert!(decode(r#"{"N":"s"}"#).is_err());
    assert!(decode(r#"{"\u006e":"s"}"#).is_err());
    // Keys are unquoted before matching; invalid UTF-8 in them matches nothing.
    assert_eq!(decode("{\"nam\u{17f}\":\"x\"}").unwrap().name, "");
    assert_eq!(
        decode("{\"\u{17f}\":1,\"name\":\"\\ud800\"}").unwrap().name,
        "\u{fffd}"
    );
    let t = decode(b"{\"name\":\"a\xffb\"}").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.name, "a\u{fffd}b");
}

#[test]
fn float_overflow_is_found_outside_strings_only() {
    let doc = check_valid(br#"{"a":"1e400","b":[1e308,-1e309],"c":1e-400}"#).unwrap();
    assert_eq!(doc.first_float_overflow(), Some("-1e309"));
    let doc = check_valid(br#"{"a":1.7976931348623157e308,"b":1e-99999}"#).unwrap();
    assert_eq!(doc.first_float_overflow(), None);
}

#[test]
fn hostile_input_never_panics() {
    // Every prefix of a busy document and a few byte flips: check_valid and decoding must
    // answer, never panic.
    let base = r#"{"name":"a\u00e9\ud800\n","n":-12,"list":[{"v":"x","w":null},{}],"m":{"k":"v"},"z":[true,false,null,1.5e3]}"#;
    let bytes = base.as_bytes();
    for i in 0..=bytes.len() {
        let _ = decode(&bytes[..i]);
        for flip in [b'"', b'\\', b'{', b']', 0xff, b'0'] {
            let mut b = bytes.to_vec();
            if i < b.len() {
                b[i] = flip;
            }
            if let Ok(doc) = check_valid(&b) {
                let mut t = T::default();
                let _ = doc.unmarshal(|d| t.decode(d));
                let _ = doc.first_float_overflow();
            }
        }
    }
}
