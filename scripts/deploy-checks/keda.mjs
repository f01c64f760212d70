// Validates KEDA objects (keda.sh/v1alpha1) against the schemas shipped in the npm package
// @kubernetes-models/keda, which kubernetes-validate does not know (it only warns on them).
//
//   node keda.mjs NODE_MODULES_DIR OBJECTS.json LABEL
//
// OBJECTS.json is a JSON array of the rendered KEDA objects. Two checks per object:
//   1. `new Kind(obj).validate()`: the package's JSON-schema validation (types, required fields);
//   2. unknown fields: the schemas accept any extra property, so a misspelt `minReplicaCout`
//      would pass and be silently ignored by KEDA. The package's TypeScript declarations list
//      each type's fields; every field of the object must be one of them (recursively through
//      KEDA's own types; Kubernetes types such as metadata are left to kubernetes-validate).
// Prints one line per problem; exit 1 if any.

import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modulesDir, objectsPath, label] = process.argv.slice(2);
const typesDir = join(modulesDir, "@kubernetes-models", "keda", "keda.sh", "v1alpha1");
const models = await import(pathToFileURL(join(typesDir, "index.js")).href);
const KEDA_PREFIX = "IComGithubKedacoreKedaV2ApisKedaV1alpha1";

// interface name (e.g. "IScaledObjectSpec") -> { field -> type text }
const interfaces = {};
for (const file of readdirSync(typesDir).filter((f) => f.endsWith(".d.ts"))) {
  const text = readFileSync(join(typesDir, file), "utf8");
  for (const match of text.matchAll(/export interface (\w+)(?: extends [\w, ]+)? \{\n([\s\S]*?)\n\}/g)) {
    const fields = {};
    for (const line of match[2].split("\n")) {
      // `    "name"?: Type;` (a type may continue on the next lines: `{ [key: string]: string; }`)
      const field = line.match(/^ {4}"([^"]+)"\??: (.+?);?$/);
      if (field) fields[field[1]] = field[2];
    }
    interfaces[match[1]] = fields;
  }
}

function kedaInterface(typeText) {
  const match = typeText.match(new RegExp(`^(?:Array<)?${KEDA_PREFIX}(\\w+?)>?$`));
  return match ? `I${match[1]}` : null;
}

function unknownFields(value, interfaceName, path, problems) {
  const fields = interfaces[interfaceName];
  if (!fields || value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => unknownFields(item, interfaceName, `${path}[${i}]`, problems));
    return;
  }
  for (const [key, child] of Object.entries(value)) {
    if (!(key in fields)) {
      problems.push(`${path}.${key} is not a field of ${interfaceName.slice(1)} (known: ${Object.keys(fields).join(", ")})`);
      continue;
    }
    const nested = kedaInterface(fields[key]);
    if (nested) unknownFields(child, nested, `${path}.${key}`, problems);
  }
}

const objects = JSON.parse(readFileSync(objectsPath, "utf8"));
let failures = 0;
for (const obj of objects) {
  const name = `${obj.kind}/${obj.metadata?.name}`;
  const Model = models[obj.kind];
  if (obj.apiVersion !== "keda.sh/v1alpha1" || typeof Model !== "function") {
    console.log(`${label}: ${name}: unknown KEDA kind or apiVersion ${obj.apiVersion}`);
    failures++;
    continue;
  }
  const problems = [];
  try {
    new Model(obj).validate();
  } catch (error) {
    const details = (error.errors || []).map((e) => `${e.instancePath || "/"} ${e.message}`);
    problems.push(...(details.length ? details : [error.message]));
  }
  unknownFields(obj, `I${obj.kind}`, "", problems);
  for (const problem of problems) console.log(`${label}: ${name}: ${problem}`);
  failures += problems.length;
}
if (objects.length === 0) {
  console.log(`${label}: no KEDA objects found (expected ScaledObjects and a TriggerAuthentication)`);
  failures++;
}
process.exit(failures ? 1 : 0);
