"""Splits a rendered kustomization into the objects Kubernetes' own schemas cover and the KEDA
objects (keda.sh/*), which kubernetes-validate cannot check and keda.mjs does.

Usage: python split_rendered.py RENDERED.yaml CORE.yaml KEDA.json
"""

import json
import sys

import yaml

rendered, core_path, keda_path = sys.argv[1:4]
with open(rendered, encoding="utf-8") as handle:
    objects = [doc for doc in yaml.safe_load_all(handle) if doc]
keda = [o for o in objects if str(o.get("apiVersion", "")).startswith("keda.sh/")]
core = [o for o in objects if not str(o.get("apiVersion", "")).startswith("keda.sh/")]
with open(core_path, "w", encoding="utf-8") as handle:
    yaml.safe_dump_all(core, handle, sort_keys=False)
with open(keda_path, "w", encoding="utf-8") as handle:
    json.dump(keda, handle)
