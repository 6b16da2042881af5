//! A JSON tree that keeps what a manifest's bytes really say: member order, duplicate and
//! case-variant keys, and scalars as their raw bytes (invalid UTF-8, lone surrogates, odd number
//! forms survive untouched). Adversarial manifests are built and minimised on this tree.

/// A JSON value: a raw scalar (or any raw text, e.g. deep nesting), an object with ordered
/// members (keys are the raw bytes between the quotes), or an array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum J {
    Raw(Vec<u8>),
    Obj(Vec<(Vec<u8>, J)>),
    Arr(Vec<J>),
}

impl J {
    /// A JSON string with the usual escaping.
    pub fn str(s: &str) -> J {
        J::Raw(serde_json::to_string(s).unwrap().into_bytes())
    }

    pub fn raw(s: &str) -> J {
        J::Raw(s.as_bytes().to_vec())
    }

    /// Parse well-formed JSON (the fixtures' manifests); `None` for anything else.
    pub fn parse(text: &[u8]) -> Option<J> {
        let mut p = Parser { s: text, i: 0 };
        let v = p.value(0)?;
        p.ws();
        (p.i == text.len()).then_some(v)
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut Vec<u8>) {
        match self {
            J::Raw(b) => out.extend_from_slice(b),
            J::Obj(members) => {
                out.push(b'{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'"');
                    out.extend_from_slice(k);
                    out.extend_from_slice(b"\":");
                    v.render_into(out);
                }
                out.push(b'}');
            }
            J::Arr(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.render_into(out);
                }
                out.push(b']');
            }
        }
    }

    /// The value of the first member named exactly `key`.
    pub fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(m) => m.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A raw string scalar's text without quotes (no unescaping), if this is one.
    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            J::Raw(b) if b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"' => {
                Some(&b[1..b.len() - 1])
            }
            _ => None,
        }
    }

    /// Number of direct children (members or items); 0 for a scalar.
    pub fn len(&self) -> usize {
        match self {
            J::Raw(_) => 0,
            J::Obj(m) => m.len(),
            J::Arr(a) => a.len(),
        }
    }

    pub fn child(&self, i: usize) -> Option<&J> {
        match self {
            J::Raw(_) => None,
            J::Obj(m) => m.get(i).map(|(_, v)| v),
            J::Arr(a) => a.get(i),
        }
    }

    pub fn child_mut(&mut self, i: usize) -> Option<&mut J> {
        match self {
            J::Raw(_) => None,
            J::Obj(m) => m.get_mut(i).map(|(_, v)| v),
            J::Arr(a) => a.get_mut(i),
        }
    }

    /// The node at a path of child indices.
    pub fn at(&self, path: &[usize]) -> Option<&J> {
        path.iter().try_fold(self, |j, &i| j.child(i))
    }

    pub fn at_mut(&mut self, path: &[usize]) -> Option<&mut J> {
        path.iter().try_fold(self, |j, &i| j.child_mut(i))
    }

    /// Paths of every object and array (this node first, then depth-first).
    pub fn containers(&self) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        self.walk(&mut Vec::new(), &mut |p, j| {
            if !matches!(j, J::Raw(_)) {
                out.push(p.to_vec());
            }
        });
        out
    }

    /// Paths of every raw scalar that is a string.
    pub fn string_leaves(&self) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        self.walk(&mut Vec::new(), &mut |p, j| {
            if j.as_str().is_some() {
                out.push(p.to_vec());
            }
        });
        out
    }

    fn walk(&self, path: &mut Vec<usize>, f: &mut dyn FnMut(&[usize], &J)) {
        f(path, self);
        for i in 0..self.len() {
            path.push(i);
            self.child(i).unwrap().walk(path, f);
            path.pop();
        }
    }

    /// Keep only the children whose indices are listed (in order).
    pub fn retain_children(&mut self, keep: &[usize]) {
        fn retain<T>(v: &mut Vec<T>, keep: &[usize]) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                keep.contains(&(i - 1))
            });
        }
        match self {
            J::Raw(_) => {}
            J::Obj(m) => retain(m, keep),
            J::Arr(a) => retain(a, keep),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && b" \t\r\n".contains(&self.s[self.i]) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.s.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// The raw bytes of a string including its quotes.
    fn string(&mut self) -> Option<Vec<u8>> {
        self.ws();
        let start = self.i;
        if self.s.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        loop {
            match *self.s.get(self.i)? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some(self.s[start..self.i].to_vec());
                }
                _ => self.i += 1,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Option<J> {
        if depth > 200 {
            return None;
        }
        self.ws();
        match *self.s.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut m = Vec::new();
                if self.eat(b'}').is_some() {
                    return Some(J::Obj(m));
                }
                loop {
                    let k = self.string()?;
                    self.eat(b':')?;
                    let v = self.value(depth + 1)?;
                    m.push((k[1..k.len() - 1].to_vec(), v));
                    if self.eat(b',').is_none() {
                        self.eat(b'}')?;
                        return Some(J::Obj(m));
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut a = Vec::new();
                if self.eat(b']').is_some() {
                    return Some(J::Arr(a));
                }
                loop {
                    a.push(self.value(depth + 1)?);
                    if self.eat(b',').is_none() {
                        self.eat(b']')?;
                        return Some(J::Arr(a));
                    }
                }
            }
            b'"' => self.string().map(J::Raw),
            _ => {
                let start = self.i;
                while self.i < self.s.len() && !b",]} \t\r\n".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                (self.i > start).then(|| J::Raw(self.s[start..self.i].to_vec()))
            }
        }
    }
}

/// Bytes for a human: printable ASCII as is, other bytes as `\xNN`, and runs of one byte longer
/// than 12 as `⟨c×N⟩` (so a 10001-deep nesting prints in a few characters).
pub fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let mut n = 1;
        while i + n < bytes.len() && bytes[i + n] == b {
            n += 1;
        }
        let one = if (0x20..0x7f).contains(&b) {
            (b as char).to_string()
        } else {
            format!("\\x{b:02x}")
        };
        if n > 12 {
            out.push_str(&format!("⟨{one}×{n}⟩"));
            i += n;
        } else {
            out.push_str(&one);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_what_serde_would_lose() {
        let text = br#"{"a":1,"A":[true,null,"x\ud800"],"a":{"b":"\xff"}}"#;
        let j = J::parse(text).unwrap();
        assert_eq!(j.render(), text.to_vec());
        assert_eq!(j.len(), 3);
        assert_eq!(j.containers(), vec![vec![], vec![1], vec![2]]);
        assert_eq!(j.string_leaves(), vec![vec![1, 2], vec![2, 0]]);
        assert_eq!(show(b"[[[[[[[[[[[[[[[[\xff"), "⟨[×16⟩\\xff");
    }
}
