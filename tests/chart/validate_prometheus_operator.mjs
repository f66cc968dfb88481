// Validates Prometheus Operator resources (JSON list on stdin) with the validators that
// @kubernetes-models/prometheus-operator generates from the operator's CRD schemas.
// Usage: node validate_prometheus_operator.mjs NODE_MODULES_DIR < docs.json ; exit 1 on the first invalid one.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules] = process.argv.slice(2);
const docs = JSON.parse(readFileSync(0, "utf8"));
for (const doc of docs) {
  const [group, version] = doc.apiVersion.split("/");
  const file = join(modules, "@kubernetes-models/prometheus-operator", group, version, `${doc.kind}.js`);
  const module = await import(pathToFileURL(file).href);
  try {
    new module[doc.kind](doc).validate();
  } catch (err) {
    console.error(`${doc.kind} ${doc.metadata.name}: ${err.message}`);
    process.exit(1);
  }
}
console.log(`${docs.length} valid`);
