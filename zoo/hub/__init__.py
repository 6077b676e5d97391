"""Hubs: publish a run folder, fetch one back, and the catalogued pretrained weights (zoo's registry.toml, a
plugin's catalogue files and the user's, $ZOO_CATALOG: zoo.catalog).

Everywhere a run folder is accepted, these work too (`zoo.api.resolve` sends them here):

    hf://ORG/NAME[@REVISION]   a model repository on the Hugging Face Hub; REVISION is a branch, tag or
                               commit (default main). huggingface-hub's own settings apply: HF_ENDPOINT,
                               HF_TOKEN (or `hf auth login`), HF_HUB_CACHE / HF_HOME, HF_HUB_OFFLINE,
                               HF_HUB_DOWNLOAD_TIMEOUT and HF_HUB_ETAG_TIMEOUT (seconds, default 10).
    file:///PATH               a folder hub: the same files in a folder, e.g. on a shared disk
                               (file://RELATIVE/PATH is taken relative to the working directory).
    NAME                       a catalogued name ([weights.NAME]): its folder (`path`: bundled with zoo, or
                               a plugin's or the user's), or its copy pulled from the hub its `hub` key names.

A repository (or folder) holds config.json, model.safetensors, README.md (a model card with YAML
metadata: library, tags, data set, metrics, licence) and the run's pictures. `push` writes exactly that.

Trust. Only safetensors are ever read: a location that offers only pickle-based weights (.bin, .pt,
.pth, .ckpt, .pkl) is refused, and nothing but the files above is ever downloaded. File names a hub
lists are checked (no '..', no absolute path, no backslash) before anything is fetched. Every file
fetched from the Hugging Face Hub is checked against the checksum the hub lists for it (sha256 for LFS
files, the git blob id otherwise; a hub that lists none, a mirror or a proxy: safetensors against the sha256
zoo records in them, the other files said to be unverified); only then does zoo record the snapshot (in
$XDG_CACHE_HOME/zoo/hub), and it only ever loads verified snapshots, so an interrupted or damaged
download is never loaded (huggingface-hub itself downloads to `.incomplete` files and renames them into
place). Offline, a verified snapshot is checked against the recorded sha256s again before use. A
catalogued name is also checked against the sha256 its catalogue entry gives for its model.safetensors.

A folder hub is copied into zoo's cache (content-addressed, verified, renamed into place when complete)
and loaded from there, so a push that replaces the folder while it is read cannot mix two versions, and
nothing is ever written into the shared folder by loading it. A copy never follows a link out of the hub
(zoo.hub.folder): a model file that is a link refuses the pull, an optional one is skipped with a note.

Sizes. A pull fetches at most a cap per kind of file (zoo.hub.limits: 1 MiB for config.json and the
card, 20 MiB a picture, the weights the config.json describes plus 1 MiB; ZOO_HUB_MAX_BYTES overrides
them all), checked against the size the hub lists (or `stat`) before a file is requested, and again
while it streams. config.json is fetched first, and checked field by field (runfiles.check_run_config);
the weights' header must declare exactly the tensors of the model it describes, so nothing is
allocated for a config that does not match its weights.

Pushing. A push refuses a damaged run (its config, or weights that do not match the checksum recorded
when they were written) before anything is written or uploaded. A push to hf://ORG/NAME[@BRANCH] commits onto
a branch that holds no model or an earlier zoo push (a new branch: as main does; zoo.hub.hf_push): never over another
library's model or someone's files, and never to an existing public repository when --private is asked; its
card's commands load the branch it went to. A folder-hub push only creates a folder
or replaces one an earlier push made (it leaves .zoo-pushed.json, the files it wrote and their sha256s):
never another run or other files, the run itself, zoo's or huggingface-hub's caches, zoo's bundled
weights, or anything through a link.

Temporaries a killed process leaves (`.tmp-*` copies, `.NAME.tmp-*` beside a pushed folder, `.*.tmp`
records) are removed by a later pull or push once no live process holds them (zoo.hub.temps).

A catalogue file (zoo's registry.toml, or one of a plugin's or the user's) catalogues pretrained weights as

    [weights.vae-mnist]
    model = "vae"                                # the plugin
    dataset = "mnist"
    description = "..."
    path = "weights/vae-mnist"                   # its folder, relative to the file's (zoo's: the package)
    hub = "hf://zoo-models/vae-mnist@<commit>"   # where it lives on a hub (hf:// or file://; path or hub)
    sha256 = "..."                               # of model.safetensors (optional for the user's)
    command = "zoo train vae --preset ... --dataset mnist"   # how it was trained
    [weights.vae-mnist.metrics]                  # measured test metrics
    mse = 0.0123

This package imports huggingface-hub only when it talks to the Hugging Face Hub (torch comes with zoo.runs' checks).
"""

from zoo.caches import is_managed, zoo_cache
from zoo.hub.cache import Fetched
from zoo.hub.files import check_config, check_safetensors, safe_name, select_files
from zoo.hub.marks import list_folder_hub
from zoo.hub.locations import HubError, Location, is_hub_source, parse
from zoo.hub.pull import catalogue, catalogue_info, fetch, pull, resolve
from zoo.hub.push import Pushed, model_card, push
from zoo.runs.files import file_sha256

__all__ = ["Fetched", "HubError", "Location", "Pushed", "catalogue", "catalogue_info", "check_config",
           "check_safetensors", "fetch", "file_sha256", "is_hub_source", "is_managed", "list_folder_hub", "model_card",
           "parse", "pull", "push", "resolve", "safe_name", "select_files", "zoo_cache"]
