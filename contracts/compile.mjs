#!/usr/bin/env node
// Compile contracts/LedgerAnchor.sol into contracts/build/LedgerAnchor.json.
//
// Usage:
//   node contracts/compile.mjs              write the artifact
//   node contracts/compile.mjs --check      exit 1 unless the committed artifact is up to date
//   node contracts/compile.mjs --out PATH   write the artifact to PATH instead
//
// The output is deterministic: the compiler is the exact solc version pinned in package.json,
// every setting that changes the bytecode is spelled out (solc's defaults move between
// releases, e.g. the default EVM version), keys are sorted and the file ends with a newline.
// Anyone can rebuild it and compare bytes.

import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);
const CONTRACT = "LedgerAnchor";
// A repo-relative unit name keeps absolute paths out of the metadata (and so the bytecode).
const SOURCE_NAME = `contracts/${CONTRACT}.sol`;
const DEFAULT_OUT = join(HERE, "build", `${CONTRACT}.json`);

const SETTINGS = {
  // cancun: what py-evm and most L2s support; solc 0.8.37 would default to osaka.
  evmVersion: "cancun",
  // runs 10000 saves only 71 gas per anchor but costs 31k more to deploy.
  optimizer: { enabled: true, runs: 200 },
  viaIR: false,
  metadata: { appendCBOR: true, bytecodeHash: "ipfs", useLiteralContent: false },
  libraries: {},
  remappings: [],
  outputSelection: {
    [SOURCE_NAME]: {
      [CONTRACT]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"],
    },
  },
};

function fail(message) {
  process.stderr.write(`compile.mjs: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const args = { check: false, out: DEFAULT_OUT };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--check") args.check = true;
    else if (argv[i] === "--out" && i + 1 < argv.length) args.out = argv[++i];
    else fail(`unknown argument ${JSON.stringify(argv[i])}`);
  }
  return args;
}

// Refuse to build with any other compiler than the pinned one: a silently different solc
// would produce a different artifact and make --check meaningless.
function checkCompilerVersion() {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const pinned = pkg.devDependencies?.solc;
  const actual = solc.version();
  if (!pinned || !actual.startsWith(`${pinned}+`)) {
    fail(`solc ${actual} is installed but package.json pins ${pinned}; run npm ci`);
  }
  return actual;
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys(value[k])]),
    );
  }
  return value;
}

function compile() {
  const version = checkCompilerVersion();
  const source = readFileSync(join(ROOT, SOURCE_NAME), "utf8");
  const input = {
    language: "Solidity",
    sources: { [SOURCE_NAME]: { content: source } },
    settings: SETTINGS,
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const diagnostics = output.errors ?? [];
  for (const d of diagnostics) process.stderr.write(`${d.formattedMessage ?? d.message}\n`);
  // Warnings fail the build too: a clean compile is part of the contract's review surface.
  if (diagnostics.length > 0) fail(`${diagnostics.length} compiler diagnostic(s)`);

  const contract = output.contracts?.[SOURCE_NAME]?.[CONTRACT];
  if (!contract) fail(`no output for ${SOURCE_NAME}:${CONTRACT}`);
  const artifact = {
    contractName: CONTRACT,
    sourceName: SOURCE_NAME,
    sourceSha256: createHash("sha256").update(source, "utf8").digest("hex"),
    compiler: { name: "solc", version, settings: SETTINGS },
    abi: contract.abi,
    bytecode: `0x${contract.evm.bytecode.object}`,
    deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
  };
  return `${JSON.stringify(sortKeys(artifact), null, 2)}\n`;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const text = compile();
  const shown = relative(process.cwd(), args.out) || args.out;
  if (args.check) {
    let current = null;
    try {
      current = readFileSync(args.out, "utf8");
    } catch {
      fail(`${shown} is missing; run: node contracts/compile.mjs`);
    }
    if (current !== text) fail(`${shown} is stale; run: node contracts/compile.mjs`);
    process.stdout.write(`${shown} is up to date\n`);
    return;
  }
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, text);
  process.stdout.write(`wrote ${shown}\n`);
}

main();
