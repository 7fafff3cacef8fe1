#!/usr/bin/env bash
# Regenerates eng/BannedSymbols.TorchSharp.txt from TorchSharp's sources (README.md in this folder).
# usage: eng/ScalarAudit/generate-ban-list.sh [TorchSharp git repository] [commit or tag]
# The commit must be the source of the TorchSharp version in Directory.Packages.props (0.107.0: build/BranchInfo.props says so).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
torchsharp="${1:-/work/.mirror/dotnet+TorchSharp/repo}"
ref="${2:-HEAD}"
commit="$(git -C "$torchsharp" rev-parse "$ref^{commit}")"
version="$(git -C "$torchsharp" show "$commit:build/BranchInfo.props" | sed -n 's:.*<\(Major\|Minor\|Patch\)Version>\([0-9]*\)<.*:\2:p' | paste -sd.)"
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
git -C "$torchsharp" archive "$commit" src/TorchSharp | tar -x -C "$src"
dotnet run --project "$here/ScalarAudit.csproj" -c Release -- "$src/src/TorchSharp" \
  --ban-list "$repo_root/eng/BannedSymbols.TorchSharp.txt" \
  --existing "$repo_root/eng/BannedSymbols.txt" \
  --source "dotnet/TorchSharp $commit (version $version)" \
  ${SCALAR_AUDIT_TSV:+--tsv "$SCALAR_AUDIT_TSV"}
