"""Shared test fixtures, and the markers that sort the tests into tiers.

Tests that need the project's ``../shared`` folder (golden fixtures, real photos, detector weights)
skip with a clear reason when it is absent; everything else runs on a fresh clone.

Tiers (docs/contributing.md): ``pytest`` runs everything, as CI does; ``pytest -m "not slow"`` is
the fast tier; ``-m "not shared"`` what runs without ../shared. :func:`pytest_collection_modifyitems`
applies both markers, so that no test module has to remember them:

* ``shared``: the test, or a fixture it uses, reads ../shared (through ``shared_path`` or
  ``SHARED_DIR``, directly or through a helper of its module or a fixture of this file);
* ``slow``: the test is listed in ``SLOW_TESTS`` (measured) or its module in ``SLOW_MODULES``.

The helpers test modules import (``shared_path``, ``REPO_ROOT``, ...) live in tests/_support.py;
this file holds only fixtures and hooks.
"""

from __future__ import annotations

import ast
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from _support import DETECTOR_SHA256, shared_path
from hypothesis import settings

# Two cores: keep intra-op threads fixed so timings and memory are predictable in CI.
torch.set_num_threads(min(2, os.cpu_count() or 1))

# CI replays the same property/fuzz examples every run (a red CI must mean a change broke
# something, not that the fuzzer got lucky); local runs explore new examples each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="module")
def one_intra_op_thread() -> Iterator[None]:
    """One intra-op thread for a module whose parallelism comes from its own threads, or whose
    network calls are tiny: two intra-op threads per call would oversubscribe the two cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def detector_weights() -> Path:
    """The real RetinaFace mobile0.25 weights from ../shared, checked against their published hash."""
    import hashlib

    path = shared_path("weights", "detection_mobilenet0.25_Final.pth")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == DETECTOR_SHA256, f"{path} is not the release file"
    return path


@pytest.fixture(scope="session")
def dic_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dicsr model folder converted from the golden (seeded random) official DIC checkpoint."""
    from dicsr.weights import convert_checkpoint

    source = shared_path("golden", "DIC_CelebA_ckp.pth")
    return convert_checkpoint(source, tmp_path_factory.mktemp("models") / "dic-celeba", name="dic-celeba")


@pytest.fixture(scope="session")
def sparnet_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dicsr model folder converted from the golden (seeded random) official SPARNet checkpoint."""
    from dicsr.weights import convert_checkpoint

    source = shared_path("golden", "SPARNet.pth")
    return convert_checkpoint(source, tmp_path_factory.mktemp("models") / "sparnet", name="sparnet")


# --- tiers -----------------------------------------------------------------------------------

#: Names through which a test reaches ../shared.
SHARED_ENTRY_POINTS = frozenset({"shared_path", "SHARED_DIR", "write_two_small_photos"})

#: Modules whose every test is slow (``tests/<name>``): the CLI's interrupt tests start real
#: processes and wait for them to be interrupted mid-run.
SLOW_MODULES = frozenset({"test_cli_interrupt.py"})

#: Tests that take long (``file::name``, every parametrisation): those over about 3.5 s (all
#: parametrisations together) in a quiet ``pytest -m "not slow" --durations=0`` on this two-core
#: machine, so that the fast tier stays under 3 minutes: whole photos through DIC, DIC's golden
#: parity over every step, model conversions, the calibration on the annotated photos, most
#: subprocess runs of the examples and the CLI (one CLI process test per module stays fast).
#: SPARNet's golden test stays in the fast tier (parity with the official code is checked on every
#: run of it).
#: Modules also mark their own (``@pytest.mark.slow``: fuzzing, the compiled and ONNX engines).
SLOW_TESTS = frozenset({
    "test_bad_inputs.py::test_cli_as_a_real_process_lists_bad_files_without_a_traceback",
    "test_bad_inputs.py::test_cli_restores_every_good_file_and_lists_the_bad_ones",
    "test_cli.py::test_convert_writes_a_model_folder_and_refuses_to_overwrite",
    "test_cli.py::test_enhance_bf16_channels_last",
    "test_cli.py::test_enhance_folder_with_every_output",
    "test_cli.py::test_enhance_with_dic_landmarks",
    "test_cli_errors.py::test_a_configuration_error_is_one_line_naming_its_culprit",
    "test_cli_errors.py::test_a_corpus_of_bad_files_never_gives_a_traceback_and_names_every_file",
    "test_cli_errors.py::test_a_hostile_model_folder_in_a_real_process",
    "test_cli_errors.py::test_a_warning_does_not_break_into_the_progress_bar",
    "test_cli_errors.py::test_an_unusable_cache_in_a_real_process",
    "test_cli_outputs.py::test_a_rerun_asking_for_more_writes_only_what_is_missing",
    "test_concurrency.py::test_dic_keeps_no_recurrent_state_between_calls",
    "test_concurrency.py::test_faces_go_through_the_network_in_chunks_of_batch_size",
    "test_concurrency.py::test_threads_sharing_one_resolver_get_the_serial_results",
    "test_convert.py::test_converted_dic_reloads_bit_identically",
    "test_convert.py::test_converted_sparnet_reloads_bit_identically",
    "test_dic_arch.py::test_bfloat16_on_cpu_is_close_to_float32",
    "test_dic_arch.py::test_channels_last_matches_golden",
    "test_dic_arch.py::test_every_step_matches_the_official_network",
    "test_dic_arch.py::test_final_step_only_equals_the_last_of_all_steps",
    "test_dic_arch.py::test_stale_memory_never_reaches_the_output",
    "test_dic_arch.py::test_traces_as_one_graph_for_torch_compile",
    "test_dic_arch.py::test_training_gives_every_parameter_a_gradient",
    "test_engines.py::test_cli_enhance_backend",
    "test_engines.py::test_cli_export_takes_an_official_checkpoint_with_a_static_batch",
    "test_engines.py::test_cli_export_writes_a_loadable_onnx_file",
    "test_enhance_many.py::test_faces_of_several_photos_share_calls_only_when_asked",
    "test_enhance_many.py::test_many_and_batch_give_each_photo_what_enhance_gives_it_bit_for_bit",
    "test_examples.py::test_batch_folder_restores_the_good_files_and_reports_the_bad_one",
    "test_examples.py::test_convert_official_verifies_a_bit_identical_reload",
    "test_examples.py::test_enhance_photo",
    "test_examples.py::test_landmarks_overlay",
    "test_examples.py::test_landmarks_overlay_refuses_a_model_without_landmarks",
    "test_examples.py::test_network_only_on_a_gfpgan_crop",
    "test_examples.py::test_paste_controls",
    "test_face_consistency.py::test_back_projection_makes_the_golden_networks_agree_with_the_photo",
    "test_face_consistency.py::test_without_clipping_the_part_the_downsampling_cannot_see_is_kept_exactly",
    "test_face_select.py::test_crop_residuals_per_pose_group_are_the_documented_ones",
    "test_face_select.py::test_no_face_is_restored_on_photos_without_one",
    "test_face_select.py::test_no_two_restored_faces_overlap_on_real_photos",
    "test_face_select.py::test_precision_and_recall_at_the_defaults_are_the_documented_ones",
    "test_face_selection_pipeline.py::test_cli_says_why_it_left_faces_alone_and_all_faces_restores_them",
    "test_face_selection_pipeline.py::test_tiny_faces_are_restored_and_large_ones_reported",
    "test_hub.py::test_revisions_are_pinned",
    "test_origins.py::test_a_corrupted_cached_folder_is_detected_on_load",
    "test_origins.py::test_a_transfer_cut_mid_body_resumes_with_a_range_request",
    "test_origins.py::test_a_truncated_body_is_a_typed_error_and_the_next_call_resumes",
    "test_origins.py::test_enhance_with_a_zoo_name_needs_no_other_step_then_works_offline",
    "test_origins.py::test_github_release_is_followed_through_its_redirect_and_converted_once",
    "test_origins.py::test_mirror_zoo_name_reproduces_the_golden_outputs",
    "test_origins.py::test_two_processes_racing_leave_one_valid_folder",
    "test_pipeline.py::test_16bit_photo_keeps_the_float_background",
    "test_pipeline.py::test_8bit_background_at_other_scales",
    "test_pipeline.py::test_8bit_paste_equals_the_float_path_on_the_same_background",
    "test_pipeline.py::test_batched_chunks_give_the_same_faces",
    "test_pipeline.py::test_bfloat16_on_cpu_is_close_to_float32",
    "test_pipeline.py::test_dic_face_is_the_adapters_output_for_its_crop",
    "test_pipeline.py::test_dic_restores_both_faces_at_the_models_scale",
    "test_pipeline.py::test_face_selection_options",
    "test_pipeline.py::test_grayscale_and_exif_rotated_inputs",
    "test_pipeline.py::test_group_photo_finds_every_face",
    "test_pipeline.py::test_numpy_bgr_in_gives_numpy_bgr_out",
    "test_pipeline.py::test_refine_crop_recrops_from_dics_own_landmarks",
    "test_pipeline_paste_options.py::test_an_oracle_network_gives_back_the_plain_upscale_with_every_option",
    "test_pipeline_paste_options.py::test_dic_faces_go_back_through_the_mask_of_their_landmarks",
    "test_sparnet_arch.py::test_adapter_bfloat16_close_to_float32",
    "test_sparnet_arch.py::test_adapter_output_matches_golden_at_network_size",
    "test_sparnet_arch.py::test_attention_maps_visible_to_forward_hooks",
})


@functools.cache
def functions_reaching_shared(path: Path) -> frozenset[str]:
    """Functions (tests, fixtures, helpers, methods) of a module that read ../shared, directly or by
    naming another such function of the module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    names_used: dict[str, set[str]] = {}  # a name defined twice (two classes' methods) gets both bodies'
    for function in functions:
        names_used.setdefault(function.name, set()).update(
            node.id for node in ast.walk(function) if isinstance(node, ast.Name)
        )
    reaching = {name for name, used in names_used.items() if used & SHARED_ENTRY_POINTS}
    while True:
        more = {name for name, used in names_used.items() if used & reaching} - reaching
        if not more:
            return frozenset(reaching)
        reaching |= more


def needs_shared(item: pytest.Item) -> bool:
    """Whether the test or one of its fixtures (fixtures of its module or of this file, by name)
    reads ../shared."""
    reaching = functions_reaching_shared(item.path) | functions_reaching_shared(Path(__file__))
    return item.name.split("[")[0] in reaching or any(
        name in reaching for name in getattr(item, "fixturenames", ())
    )


def stale_slow_entries() -> list[str]:
    """Entries of SLOW_MODULES and SLOW_TESTS that name no module or no test function (renamed or
    removed), which would otherwise put a slow test back in the fast tier without a word."""
    here = Path(__file__).parent
    stale = [name for name in SLOW_MODULES if not (here / name).is_file()]
    for entry in SLOW_TESTS:
        module, _, name = entry.partition("::")
        path = here / module
        if not path.is_file() or name not in {
            node.name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }:
            stale.append(entry)
    return sorted(stale)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    stale = stale_slow_entries()
    if stale:
        raise pytest.UsageError("tests/conftest.py lists slow tests that do not exist: " + ", ".join(stale))
    for item in items:
        if needs_shared(item):
            item.add_marker(pytest.mark.shared)
        key = f"{item.path.name}::{item.name.split('[')[0]}"
        if item.path.name in SLOW_MODULES or key in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
