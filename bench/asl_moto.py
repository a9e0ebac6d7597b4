"""bench asl, the peer side: the same definition run by moto's Step Functions.

N executions of tests/fixtures/asl/migrate-demo.asl.json (with the same 1-second Settle wait
as the A2A side) are started at once on a moto server whose Step Functions executes
definitions; every Lambda call answers from moto's queue of canned responses (one answer
shape that suits every step, since the queue is shared). Prints the wall time from the first
StartExecution to the last execution's end on stdout, details on stderr.

Usage: asl_moto.py ENDPOINT DEFINITION [EXECUTIONS] [TABLES]
"""

import json
import sys
import time
import urllib.request

import boto3


def post(endpoint, path, body):
    req = urllib.request.Request(
        endpoint + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(req).read()


def main():
    endpoint, definition = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 700
    tables = int(sys.argv[4]) if len(sys.argv) > 4 else 10

    post(endpoint, "/moto-api/config", {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})
    answer = json.dumps({
        "tables": [f"mdl_table_{i}" for i in range(tables)],
        "site": "agora-08012345",
        "rows": 100,
        "files": 1234,
        "imported": 3,
        "ok": True,
        "url": "https://agora.xtec.cat/08012345/",
    })
    calls = n * (tables + 6)  # Preflight, Freeze, tables, SyncFiles, Import, Verify, Switch
    post(endpoint, "/moto-api/static/lambda-simple/response", {"results": [answer] * calls, "region": "us-east-1"})

    with open(definition) as f:
        d = json.load(f)
    d["States"]["Settle"]["Seconds"] = 1
    text = json.dumps(d).replace("${PreflightFunction}", "a2a-preflight")

    sfn = boto3.client("stepfunctions", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="bench", aws_secret_access_key="bench")
    name = f"migrate-demo-{int(time.time() * 1000)}"
    arn = sfn.create_state_machine(name=name, definition=text,
                                   roleArn="arn:aws:iam::123456789012:role/a2a-bench")["stateMachineArn"]
    started = time.monotonic()
    execs = [
        sfn.start_execution(stateMachineArn=arn, name=f"bench-{i}",
                            input=json.dumps({"school_code": f"08{i:06d}"}))["executionArn"]
        for i in range(n)
    ]
    pending = set(execs)
    results = {}
    while pending:
        for e in list(pending):
            d = sfn.describe_execution(executionArn=e)
            if d["status"] != "RUNNING":
                results[e] = d
                pending.discard(e)
        if pending:
            time.sleep(0.2)
    wall = time.monotonic() - started
    ok = sum(1 for d in results.values()
             if d["status"] == "SUCCEEDED" and json.loads(d.get("output", "null")) == {"url": "https://agora.xtec.cat/08012345/"})
    failed = [d for d in results.values() if d["status"] != "SUCCEEDED"]
    print(f"moto: {n} executions, {ok} succeeded with the expected output", file=sys.stderr)
    if failed:
        print(f"moto: first failure: {failed[0].get('error')} {failed[0].get('cause')}", file=sys.stderr)
    print(f"{wall:.3f}")


if __name__ == "__main__":
    main()
