"""UCF-HMDB (Section 5.3 of the paper): the 12 classes shared by UCF101 and HMDB51, 3,809 videos.

One dataset is the source (split 70/30 into train/val), the other the target (tested whole). Prepare it with
tools/prepare_ucf_hmdb.py (docs/datasets.md, "UCF-HMDB").
"""
import re

from framework import DATASET_REGISTRY

from .list_dataset import PreparedVideoDGDataset

CLASSES = ["climb", "fencing", "golf", "kick_ball", "pullup", "punch", "pushup", "ride_bike", "ride_horse",
           "shoot_ball", "shoot_bow", "walk"]

# UCF101 class folder -> label. Several UCF101 classes make one shared class (the official APN lists agree).
UCF_FOLDERS = {
    "RockClimbingIndoor": 0, "RopeClimbing": 0, "Fencing": 1, "GolfSwing": 2, "SoccerPenalty": 3, "PullUps": 4,
    "Punch": 5, "BoxingPunchingBag": 5, "BoxingSpeedBag": 5, "PushUps": 6, "Biking": 7, "HorseRiding": 8,
    "Basketball": 9, "Archery": 10, "WalkingWithDog": 11,
}
# HMDB51 class folders carry the shared names themselves.
HMDB_FOLDERS = {name: label for label, name in enumerate(CLASSES)}

# Videos per class folder: every video of these UCF101 / HMDB51 classes. They equal the per-folder counts of
# the official APN list files (ucf_train + ucf_val = 1,603 + 406 = 2,009; hmdb_train + hmdb_val = 1,434 + 366
# = 1,800), i.e. 3,809 videos as in Section 5.3.
EXPECTED_UCF = {
    "Archery": 145, "Basketball": 134, "Biking": 134, "BoxingPunchingBag": 163, "BoxingSpeedBag": 134,
    "Fencing": 111, "GolfSwing": 139, "HorseRiding": 164, "PullUps": 100, "Punch": 160, "PushUps": 102,
    "RockClimbingIndoor": 144, "RopeClimbing": 119, "SoccerPenalty": 137, "WalkingWithDog": 123,
}
EXPECTED_HMDB = {
    "climb": 108, "fencing": 116, "golf": 105, "kick_ball": 128, "pullup": 104, "punch": 126, "pushup": 103,
    "ride_bike": 103, "ride_horse": 116, "shoot_ball": 131, "shoot_bow": 112, "walk": 548,
}

# domain -> (raw release folder inside the dataset folder, class folder -> label, expected videos per folder)
RELEASES = {
    "ucf": ("UCF-101", UCF_FOLDERS, EXPECTED_UCF),
    "hmdb": ("hmdb51", HMDB_FOLDERS, EXPECTED_HMDB),
}


# UCF101 names clips v_<Class>_g<group>_c<clip>: the clips of one group are cut from one long video.
UCF_NAME = re.compile(r"v_(?P<cls>.+)_g(?P<group>\d+)_c\d+")
# HMDB51 names clips <source video>_<action>_<body>_<camera motion>_<people>_<viewpoint>_<quality>_<n>; the
# clips of one source video (a film or a web video, often in several classes) share that name.
HMDB_SUFFIX = re.compile(r"_[a-z]+_(?:cm|nm)_np\d+_[a-z]+_[a-z]+_\d+")


def ucf_group(key: str) -> str:
    """Class folder and group of a UCF101 clip key (.../<Class>/v_<Class>_gXX_cYY -> <Class>/gXX)."""
    match = UCF_NAME.fullmatch(key.rsplit("/", 1)[-1])
    return f"{match.group('cls')}/g{match.group('group')}" if match else key


def hmdb_source(key: str) -> str:
    """Source video of an HMDB51 clip key: its name before the action and the clip's attribute suffix.

    A name without the attribute suffix (e.g. a renamed frame folder video_NNNN) is its own group.
    """
    parts = key.split("/")
    name, action = parts[-1], parts[-2] if len(parts) > 1 else ""
    match = HMDB_SUFFIX.search(name)
    if not match or match.end() != len(name):
        return key
    source = name[:match.start()]
    for spelling in {action, action.replace("_", " "), action.replace("_", "")}:  # the action tag, if any
        if spelling and source.endswith("_" + spelling):
            return source[:-len(spelling) - 1]
    return source


@DATASET_REGISTRY.register()
class UCFHMDB(PreparedVideoDGDataset):
    dataset_dir = "ucf_hmdb"
    domains = ["ucf", "hmdb"]
    grouping = {"ucf": "UCF101 group (class folder and gXX)",
                "hmdb": "HMDB51 source video (the name before the action and clip attributes)"}

    @staticmethod
    def group_of(domain: str, key: str) -> str:
        return ucf_group(key) if domain == "ucf" else hmdb_source(key)
    prepare_hint = ("Download UCF101 and HMDB51 and run `python tools/prepare_ucf_hmdb.py --root <DATASET.ROOT>` "
                    '(docs/datasets.md, "UCF-HMDB").')
