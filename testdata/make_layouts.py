#!/usr/bin/env python3
"""Build small OCI image layouts deterministically (same bytes, same digests on every run).

usage: make_layouts.py OUTDIR

Each image is its own OCI layout under OUTDIR/<name>, referenced as oci:OUTDIR/<name>:latest.
"""
import gzip, hashlib, io, json, os, sys, tarfile

OUT = sys.argv[1]
EPOCH = 1700000000


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def layer(files):
    """A gzipped tar of {path: bytes}, byte-identical on every run."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name in sorted(files):
            data = files[name]
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uid, ti.gid = len(data), EPOCH, 0o644, 0, 0
            ti.uname = ti.gname = "root"
            t.addfile(ti, io.BytesIO(data))
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=9) as g:
        g.write(raw.getvalue())
    return gz.getvalue(), sha(raw.getvalue())


def write_blob(layout, data):
    d = sha(data)
    p = os.path.join(layout, "blobs", "sha256", d.split(":")[1])
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    return {"digest": d, "size": len(data)}


def image(layout, layers, arch="amd64", label="x"):
    descs, diff_ids = [], []
    for files in layers:
        data, diff = layer(files)
        d = write_blob(layout, data)
        d["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        descs.append(d)
        diff_ids.append(diff)
    config = {
        "architecture": arch, "os": "linux",
        "config": {"Labels": {"fixture": label}, "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "created": "2023-11-14T22:13:20Z",
    }
    c = write_blob(layout, json.dumps(config, sort_keys=True).encode())
    c["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": c, "layers": descs}
    m = write_blob(layout, json.dumps(manifest, sort_keys=True).encode())
    m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    m["platform"] = {"architecture": arch, "os": "linux"}
    return m


def finish(layout, top):
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    top = dict(top)
    top["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [top]}, f, sort_keys=True)


BASE = {"etc/os-release": b"NAME=fixture\nVERSION=1\n", "bin/sh": b"#!fake shell\n"}


def single(name, extra, label, arch="amd64"):
    layout = os.path.join(OUT, name)
    m = image(layout, [BASE, extra], arch, label)
    m.pop("platform")
    finish(layout, m)


single("alpine1", {"etc/alpine-release": b"3.18.0\n"}, "alpine-3.18")
single("alpine2", {"etc/alpine-release": b"3.19.0\n"}, "alpine-3.19")
single("app", {"app/main": b"print('app v1')\n"}, "app-v1")
single("tool", {"usr/bin/tool": b"tool 0.1\n"}, "tool")
single("doomed", {"tmp/doomed": b"will be deleted through the API\n"}, "doomed")
single("mini", {"hello": b"hello from minimal\n"}, "minimal")

layout = os.path.join(OUT, "multi")
children = [image(layout, [BASE, {"arch": a.encode() + b"\n"}], a, "multi-" + a) for a in ("amd64", "arm64")]
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children}
ix = write_blob(layout, json.dumps(index, sort_keys=True).encode())
ix["mediaType"] = "application/vnd.oci.image.index.v1+json"
finish(layout, ix)
