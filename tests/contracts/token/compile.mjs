#!/usr/bin/env node
// Compile tests/contracts/token/TestToken.sol with the pinned solc (package.json) and
// OpenZeppelin's contracts from node_modules; print {"abi", "bytecode"} as JSON on stdout.
// For the tests alone (tests/test_chain_ingest.py), so nothing is committed from its output.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..", "..");
const SOURCE = "tests/contracts/token/TestToken.sol";

function findImports(path) {
  try {
    return { contents: readFileSync(join(ROOT, "node_modules", path), "utf8") };
  } catch {
    return { error: `not found: ${path}` };
  }
}

const input = {
  language: "Solidity",
  sources: { [SOURCE]: { content: readFileSync(join(ROOT, SOURCE), "utf8") } },
  settings: {
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { [SOURCE]: { TestToken: ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  process.stderr.write(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(1);
}
const token = output.contracts[SOURCE].TestToken;
process.stdout.write(JSON.stringify({ abi: token.abi, bytecode: token.evm.bytecode.object }));
