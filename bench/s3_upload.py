"""Upload a filesystem registry store to an S3 bucket, one PutObject per file (as the registry's
s3 driver writes links and small blobs), in parallel.

usage: s3_upload.py ENDPOINT BUCKET PREFIX ROOT   (ROOT holds docker/registry/v2)
Any credentials work against a local moto server.
"""
import os, sys
from concurrent.futures import ThreadPoolExecutor
import boto3

endpoint, bucket, prefix, root = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                  aws_secret_access_key="bench", region_name="us-east-1")
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
files = []
for d, _, names in os.walk(os.path.join(root, "docker")):
    for n in names:
        p = os.path.join(d, n)
        files.append((p, prefix.strip("/") + "/" + os.path.relpath(p, root)))

def put(item):
    p, key = item
    with open(p, "rb") as f:
        s3.put_object(Bucket=bucket, Key=key, Body=f.read())

with ThreadPoolExecutor(16) as ex:
    list(ex.map(put, files))
print(len(files))
