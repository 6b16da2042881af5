//! Delta debugging (Zeller's ddmin): the smallest list of operations that still shows a
//! disagreement of the same kind about the same subject, then (for manifests) the fewest JSON
//! members, container by container from the top.

use super::json::J;
use super::ops::{Act, Op};
use super::oracle::{observe, Disagreement, Scope, Tamper};
use std::collections::HashMap;

/// A 1-minimal subset of `0..n` for which `test` holds (`test` holds for all of `0..n`).
pub fn ddmin(n: usize, test: &mut dyn FnMut(&[usize]) -> bool) -> Vec<usize> {
    let mut cache: HashMap<Vec<usize>, bool> = HashMap::new();
    let mut t = |s: &[usize]| -> bool {
        if let Some(&r) = cache.get(s) {
            return r;
        }
        let r = test(s);
        cache.insert(s.to_vec(), r);
        r
    };
    let mut cur: Vec<usize> = (0..n).collect();
    if n == 0 || t(&[]) {
        return vec![];
    }
    let mut g = 2;
    while cur.len() >= 2 {
        let size = cur.len().div_ceil(g);
        let chunks: Vec<Vec<usize>> = cur.chunks(size).map(<[usize]>::to_vec).collect();
        let mut reduced = false;
        for c in &chunks {
            if t(c) {
                cur = c.clone();
                g = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && chunks.len() > 2 {
            for i in 0..chunks.len() {
                let comp: Vec<usize> = chunks
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, c)| c.iter().copied())
                    .collect();
                if t(&comp) {
                    cur = comp;
                    g = (g - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if g >= cur.len() {
                break;
            }
            g = (g * 2).min(cur.len());
        }
    }
    cur
}

/// The fewest members and items of `body` for which `test` holds, outermost container first.
pub fn minimise_json(body: &J, test: &mut dyn FnMut(&J) -> bool) -> J {
    let mut j = body.clone();
    let mut queue = std::collections::VecDeque::from([Vec::<usize>::new()]);
    while let Some(path) = queue.pop_front() {
        let n = j.at(&path).map_or(0, J::len);
        if n > 0 {
            let keep = ddmin(n, &mut |idx| {
                let mut c = j.clone();
                c.at_mut(&path).unwrap().retain_children(idx);
                test(&c)
            });
            j.at_mut(&path).unwrap().retain_children(&keep);
        }
        let node = j.at(&path).unwrap();
        for i in 0..node.len() {
            if !matches!(node.child(i), Some(J::Raw(_))) {
                let mut p = path.clone();
                p.push(i);
                queue.push_back(p);
            }
        }
    }
    j
}

/// What must stay the same while a case shrinks, beyond kind and subject, so that the shrinking
/// case keeps its cause rather than drifting to another one: for aborts, the aborting side's
/// reason; for a tag called broken, the codes that call it so; for a failed pull, the registry's
/// answer to the manifest GET. Digests are masked (a shrinking manifest changes its own digest).
pub fn signature(d: &Disagreement) -> String {
    let text = match d.kind {
        "gc-abort" if d.real.starts_with("aborts") => d.real.clone(),
        "gc-abort" => d.regfsck.clone(),
        "gc-abort-reason" | "gc-panic" => d.real.clone(),
        "pull-broken-but-works" => {
            let codes: std::collections::BTreeSet<&str> = d
                .regfsck
                .split("; ")
                .map(|f| f.split(" at ").next().unwrap_or(f))
                .collect();
            codes.into_iter().collect::<Vec<_>>().join(",")
        }
        "pull-fine-but-fails" | "repair-broke-pull" => {
            d.real.split(';').next().unwrap_or("").to_string()
        }
        _ => return String::new(),
    };
    mask_digests(&text)
}

/// `sha256:ab12cd34…` (as `ops::shorten` prints digests) and whole digests become `#`.
pub fn mask_digests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let n = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if n >= 64 || (n >= 8 && rest[n..].starts_with('…')) {
            out.push('#');
            rest = &rest[n..];
            rest = rest.strip_prefix('…').unwrap_or(rest);
        } else if n > 0 {
            out.push_str(&rest[..n]);
            rest = &rest[n..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

pub struct Minimised {
    /// Indices of the kept operations in the case's list (for `FUZZ_KEEP`).
    pub keep: Vec<usize>,
    /// The kept operations, manifests possibly reduced member by member.
    pub ops: Vec<Op>,
    /// Observations made.
    pub tests: usize,
    /// Whether the focused re-run showed the disagreement at all (if not: not minimised).
    pub reproduced: bool,
    /// The disagreement as the minimised case shows it (its texts name what is left).
    pub shown: Option<Disagreement>,
}

/// Minimise `ops` for `d`, with at most `budget` observations for the member-level pass (0: none).
pub fn minimise(
    fixture: &str,
    ops: &[Op],
    d: &Disagreement,
    tamper: Option<&Tamper>,
    member_budget: usize,
) -> Minimised {
    let scope = Scope::for_disagreement(d);
    let sig = signature(d);
    let mut tests = 0;
    let mut last = None;
    let mut same = |candidate: &[Op]| {
        tests += 1;
        let found = observe(fixture, candidate, &scope, tamper)
            .disagreements
            .into_iter()
            .find(|x| x.kind == d.kind && x.subject == d.subject && signature(x) == sig);
        let hit = found.is_some();
        if hit {
            last = found;
        }
        hit
    };
    if !same(ops) {
        return Minimised {
            keep: (0..ops.len()).collect(),
            ops: ops.to_vec(),
            tests: 1,
            reproduced: false,
            shown: None,
        };
    }
    let keep = ddmin(ops.len(), &mut |idx| {
        same(&idx.iter().map(|&i| ops[i].clone()).collect::<Vec<_>>())
    });
    let mut min: Vec<Op> = keep.iter().map(|&i| ops[i].clone()).collect();
    let mut budget = member_budget;
    for k in 0..min.len() {
        let Some(Act::Manifest { repo, tag, body }) = min[k].acts.first().cloned() else {
            continue;
        };
        let small = minimise_json(&body, &mut |candidate| {
            if budget == 0 {
                return false;
            }
            budget -= 1;
            let mut trial = min.clone();
            trial[k].acts[0] = Act::Manifest {
                repo: repo.clone(),
                tag: tag.clone(),
                body: candidate.clone(),
            };
            same(&trial)
        });
        min[k].acts[0] = Act::Manifest {
            repo,
            tag,
            body: small,
        };
    }
    // The last successful trial need not be the final list: show what the final list says.
    let shown = if same(&min) { last } else { None };
    Minimised {
        keep,
        ops: min,
        tests,
        reproduced: true,
        shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddmin_finds_the_two_culprits() {
        let mut calls = 0;
        let keep = ddmin(20, &mut |s| {
            calls += 1;
            s.contains(&3) && s.contains(&17)
        });
        assert_eq!(keep, vec![3, 17]);
        assert!(calls < 60, "{calls} tests");
        assert_eq!(ddmin(5, &mut |_| true), Vec::<usize>::new());
        assert_eq!(ddmin(1, &mut |s| s == [0]), vec![0]);
    }

    #[test]
    fn json_minimisation_keeps_only_the_culprit_member() {
        let j = J::parse(br#"{"a":1,"b":{"c":[1,2,{"Digest":"x"}],"d":2},"e":[]}"#).unwrap();
        let small = minimise_json(&j, &mut |c| {
            String::from_utf8_lossy(&c.render()).contains("\"Digest\"")
        });
        assert_eq!(small.render(), br#"{"b":{"c":[{"Digest":"x"}]}}"#.to_vec());
    }
}
