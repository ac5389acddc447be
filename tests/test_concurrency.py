"""One ``FaceSuperResolver`` shared by threads; no per-call state; memory-bounded batches.

Real components throughout: the RetinaFace weights from ../shared, the golden SPARNet checkpoint
(fast) and the golden DIC checkpoint (the official DIC code keeps its recurrent state on the
module; dicsr's must not), converted once per session by conftest's fixtures.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from _support import shared_path

from dicsr.image import load_image
from dicsr.pipeline import FaceSuperResolver, SelectionPolicy

# Photos with 1 to 7 faces, as files (PIL results, uint8) and one as a float32 array.
PHOTOS = [
    ("dlib", "examples", "faces", "2008_002470.jpg"),
    ("dlib", "examples", "faces", "2007_007763.jpg"),
    ("dlib", "examples", "faces", "2008_001009.jpg"),
    ("face_recognition", "examples", "obama-240p.jpg"),
    ("facexlib", "assets", "test.jpg"),
]
FLOAT_PHOTO = ("Pillow", "Tests", "images", "hopper.jpg")
UPSCALE = 2.0  # the property under test does not depend on the scale; 2x keeps pastes cheap


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


@pytest.fixture(scope="module")
def resolver(sparnet_model_dir, detector_weights):
    # all_sizes: the group photos' faces are larger than a 16-px model restores by default
    return FaceSuperResolver.from_pretrained(
        sparnet_model_dir, device="cpu", detector_weights=detector_weights, upscale=UPSCALE, progress=False,
        selection=SelectionPolicy(all_sizes=True),
    )


@pytest.fixture(scope="module")
def inputs():
    files = [shared_path("faces", *parts) for parts in PHOTOS]
    float_photo = load_image(shared_path("faces", *FLOAT_PHOTO)).rgb  # H×W×3 float32 in [0, 1]
    return [*files, float_photo]


def module_state(module: torch.nn.Module) -> dict[tuple[str, str], object]:
    """Every attribute of every submodule; tensors (parameters, buffers, plain attributes) by identity."""
    found: dict[tuple[str, str], object] = {}
    for name, sub in module.named_modules():
        found.update(((name, attr), value) for attr, value in vars(sub).items())
        own = itertools.chain(sub.named_parameters(recurse=False), sub.named_buffers(recurse=False))
        for attr, value in own:
            found[(name, attr)] = value
    return found


def assert_stateless(before: dict, values: dict, module: torch.nn.Module) -> None:
    """No attribute added, removed or rebound by the calls; no tensor's values changed."""
    after = module_state(module)
    assert set(after) == set(before), f"attributes added or removed per call: {set(after) ^ set(before)}"
    for key, value in before.items():
        assert after[key] is value, f"{key} was rebound during a call"
        if isinstance(value, torch.Tensor):  # eval mode: BatchNorm statistics and weights untouched
            assert torch.equal(value, values[key]), f"{key} changed during a call"


def snapshot(module: torch.nn.Module) -> tuple[dict, dict]:
    before = module_state(module)
    values = {k: v.clone() for k, v in before.items() if isinstance(v, torch.Tensor)}
    return before, values


def summary(result) -> dict:
    """What a user reads off a result, as plain numpy for comparisons."""
    return {
        "num_faces": result.num_faces,
        "boxes": [face.box for face in result.faces],
        "detection_boxes": [face.detection_box for face in result.faces],
        "scores": [face.score for face in result.faces],
        "faces": [np.asarray(face.image) for face in result.faces],
        "image": np.asarray(result.image),
        "upscale": result.upscale,
    }


def assert_same(parallel: dict, serial: dict, what: str) -> None:
    assert parallel["num_faces"] == serial["num_faces"], what
    for key in ("boxes", "detection_boxes", "scores", "upscale"):
        assert parallel[key] == serial[key], f"{what}: {key}"
    pairs = zip([*parallel["faces"], parallel["image"]], [*serial["faces"], serial["image"]], strict=True)
    for got, want in pairs:
        assert got.dtype == want.dtype and got.shape == want.shape, what
        if want.dtype == np.uint8:
            np.testing.assert_array_equal(got, want, err_msg=what)
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=what)


def test_threads_sharing_one_resolver_get_the_serial_results(resolver, inputs):
    serial = [summary(resolver.enhance(image)) for image in inputs]
    assert sum(s["num_faces"] for s in serial) >= 15  # the photos really have faces to restore
    assert serial[-1]["image"].dtype == np.float32  # float array in, float array out

    network = resolver.adapter.network
    before, values = snapshot(network)
    adapter_attributes = dict(vars(resolver.adapter))

    # every photo twice, interleaved, on 4 workers: calls overlap in detection, network and paste
    jobs = list(range(len(inputs))) * 2
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: (i, summary(resolver.enhance(inputs[i]))), jobs))

    for index, result in results:
        assert_same(result, serial[index], f"photo {index} in a thread differs from the serial result")
    assert_stateless(before, values, network)
    assert vars(resolver.adapter) == adapter_attributes, "the adapter's attributes changed during calls"


@pytest.fixture(scope="module")
def dic_resolver(dic_model_dir):
    return FaceSuperResolver.from_pretrained(dic_model_dir, device="cpu", progress=False)


def test_dic_keeps_no_recurrent_state_between_calls(dic_resolver):
    # The official DIC keeps its recurrent hidden state and last heatmap on the module and resets
    # them per batch; two threads sharing one DIC would then mix faces. Ours passes state along.
    faces = np.load(shared_path("golden", "DIC_CelebA.npz"))["lr_uint8"]  # (2, 16, 16, 3) uint8
    serial = [summary(dic_resolver.enhance(face, aligned=True)) for face in faces]
    assert all(s["num_faces"] == 1 for s in serial)
    assert not np.array_equal(serial[0]["faces"][0], serial[1]["faces"][0])

    network = dic_resolver.adapter.network
    before, values = snapshot(network)
    with ThreadPoolExecutor(max_workers=2) as pool:
        parallel = list(pool.map(lambda face: summary(dic_resolver.enhance(face, aligned=True)), faces))
    for index in range(len(faces)):
        assert_same(parallel[index], serial[index], f"DIC face {index} in a thread differs from serial")
    assert_stateless(before, values, network)


def test_faces_go_through_the_network_in_chunks_of_batch_size(resolver, sparnet_model_dir, detector_weights):
    # Memory is bounded by batch_size faces per network call, whatever the number of faces; the
    # chunking changes nothing in the result. The real adapter is only observed, not replaced.
    photo = load_image(shared_path("faces", "dlib", "examples", "faces", "2007_007763.jpg")).rgb
    results, calls = {}, {}
    for batch_size in (2, 16):
        chunked = FaceSuperResolver.from_pretrained(
            sparnet_model_dir, device="cpu", detector_weights=detector_weights, upscale=UPSCALE,
            batch_size=batch_size, progress=False, selection=SelectionPolicy(all_sizes=True),
        )
        forward = chunked.adapter.forward
        sizes: list[int] = []

        def observed(lr, *, all_steps=False, _forward=forward, _sizes=sizes):
            _sizes.append(int(lr.shape[0]))
            return _forward(lr, all_steps=all_steps)

        chunked.adapter.forward = observed
        results[batch_size] = summary(chunked.enhance(photo))
        calls[batch_size] = sizes

    faces = results[2]["num_faces"]
    assert faces >= 5
    assert calls[2] == [2] * (faces // 2) + ([faces % 2] if faces % 2 else [])
    assert calls[16] == [faces]
    assert_same(results[2], results[16], "batch_size=2 and batch_size=16 give different faces")
