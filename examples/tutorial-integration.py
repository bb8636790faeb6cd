#!/usr/bin/env python3
"""A keptn 1.x style integration in remote (pull) mode, for the README tutorial.

It registers its subscriptions, polls the control plane for open deployment/test/release tasks
of project sockshop and answers each with .started and .finished. `test` fails for images tagged `bad`.
Environment: KEPTN_ENDPOINT (default http://127.0.0.1:8080/api), KEPTN_API_TOKEN.
"""
import json
import os
import time
import urllib.request

API = os.environ.get("KEPTN_ENDPOINT", "http://127.0.0.1:8080/api").rstrip("/")
TOKEN = os.environ["KEPTN_API_TOKEN"]


def call(method, path, body=None):
    req = urllib.request.Request(API + path, method=method, headers={"x-token": TOKEN, "content-type": "application/json"},
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


def answer(ev, result):
    task = ev["type"].split(".")[3]
    d = ev["data"]
    scope = {"project": d["project"], "stage": d["stage"], "service": d["service"]}
    for kind, extra in (("started", {}), ("finished", {"status": "succeeded", "result": result})):
        call("POST", "/v1/event", {"type": f"sh.keptn.event.{task}.{kind}", "source": "tutorial-integration",
                                   "shkeptncontext": ev["shkeptncontext"], "triggeredid": ev["id"],
                                   "data": {**scope, **extra}})


TASKS = ("deployment", "test", "release")
# Register like keptn's distributor does, so the control plane knows someone answers these tasks.
call("POST", "/controlPlane/v1/uniform/registration", {
    "name": "tutorial-integration",
    "metadata": {"hostname": os.uname().nodename, "integrationversion": "1.0.0", "distributorversion": "1.4.5",
                 "location": "remote-execution-plane", "kubernetesmetadata": {"namespace": "keptn"}},
    "subscriptions": [{"event": f"sh.keptn.event.{t}.triggered", "filter": {"projects": ["sockshop"]}} for t in TASKS],
})

seen = set()
while True:
    for task in TASKS:
        open_events = call("GET", f"/controlPlane/v1/event/triggered/sh.keptn.event.{task}.triggered?project=sockshop")
        for ev in open_events["events"]:
            if ev["id"] in seen:
                continue
            seen.add(ev["id"])
            image = ev["data"].get("configurationChange", {}).get("values", {}).get("image", "")
            time.sleep(1)  # pretend to work, so --watch has something to show
            answer(ev, "fail" if task == "test" and image.endswith(":bad") else "pass")
    time.sleep(0.5)
