"""NTU RGB+D 60 (Section 5.5 of the paper): 56,880 RGB videos of 60 actions, one domain per camera.

Videos are named SsssCcccPpppRrrrAaaa_rgb.avi (setup, camera, performer, replication, action). Every sample is
filmed by the three cameras at once, so each camera is one domain with a third of the videos. Prepare it with
tools/prepare_ntu.py (docs/datasets.md, "NTU RGB+D").
"""
import re

from framework import DATASET_REGISTRY

from .list_dataset import PreparedVideoDGDataset

# A001..A060, titles as in the dataset's README (github.com/shahroudy/NTURGB-D).
ACTIONS = [
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw", "sitting down",
    "standing up (from sitting position)", "clapping", "reading", "writing", "tear up paper", "wear jacket",
    "take off jacket", "wear a shoe", "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something",
    "put something inside pocket / take out something from pocket", "hopping (one foot jumping)", "jump up",
    "make a phone call/answer phone", "playing with phone/tablet", "typing on a keyboard",
    "pointing to something with finger", "taking a selfie", "check time (from watch)", "rub two hands together",
    "nod head/bow", "shake head", "wipe face", "salute", "put the palms together", "cross hands in front (say stop)",
    "sneeze/cough", "staggering", "falling", "touch head (headache)", "touch chest (stomachache/heart pain)",
    "touch back (backache)", "touch neck (neckache)", "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm", "punching/slapping other person", "kicking other person",
    "pushing other person", "pat on back of other person", "point finger at the other person",
    "hugging other person", "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
]
CAMERAS = {1: "camera1", 2: "camera2", 3: "camera3"}  # camera id Cccc -> domain
NUM_SETUPS = 17  # S001..S017; higher setups (and actions above A060) belong to NTU RGB+D 120

# NTU RGB+D paper (Shahroudy et al., CVPR 2016): 56,880 samples, each recorded by all three cameras.
EXPECTED_VIDEOS = 56880
EXPECTED_PER_CAMERA = EXPECTED_VIDEOS // 3


def performer(key: str) -> str:
    """Performer id of an NTU clip key (.../SsssCcccPpppRrrrAaaa_rgb -> Pppp); other names are their own group."""
    match = re.search(r"S\d{3}C\d{3}(P\d{3})R\d{3}A\d{3}", key.rsplit("/", 1)[-1])
    return match.group(1) if match else key


@DATASET_REGISTRY.register()
class NTURGBD(PreparedVideoDGDataset):
    dataset_dir = "ntu_rgbd"
    domains = list(CAMERAS.values())
    domain_aliases = {alias.format(i): name for i, name in CAMERAS.items() for alias in ("c{}", "C{:03d}")}
    grouping = "performer (Pppp of the file name; NTU's cross-subject protocol splits by performer too)"
    prepare_hint = ("Download the NTU RGB+D 60 RGB videos and run `python tools/prepare_ntu.py --root "
                    '<DATASET.ROOT>` (docs/datasets.md, "NTU RGB+D").')

    @staticmethod
    def group_of(domain: str, key: str) -> str:
        return performer(key)
