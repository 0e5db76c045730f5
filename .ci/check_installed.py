"""Run from outside the source tree against the installed wheel: the package imports
from site-packages, builds a model and finds the manifest it ships."""

import json
from pathlib import Path

import manet_zoo
from manet_zoo.weights import manifest_path

package_dir = Path(manet_zoo.__file__).resolve().parent
assert "site-packages" in str(package_dir), f"imported from the source tree: {package_dir}"
manifest = manifest_path()
assert manifest.is_file() and manifest.resolve().parent == package_dir, manifest
records = json.loads(manifest.read_text())["models"]
assert "manet_rafdb" in records, sorted(records)
model = manet_zoo.manet(num_classes=7)
assert sum(p.numel() for p in model.parameters()) == 50_547_214
print(f"installed manet-zoo {manet_zoo.__version__} at {package_dir}: OK ({len(records)} records)")
