"""wbdump: write and check whisper-fidelity/1 activation dumps (docs/dump-format.md) and serve a
Python port to the workbench over the port protocol (docs/ports.md).

    import wbdump
    with wbdump.DumpWriter("port.h5", implementation="my-port", precision="float32",
                           dims=wbdump.ModelDims.from_checkpoint(M),
                           model_sha256=wbdump.model_sha256(M)) as w:
        w.add("mel", mel)
    wbdump.serve(MyPort(M))          # a port: hello/run/stage answered on stdout (docs/ports.md)

Modules: dump (dims, registry, name maps, writer, reader, checkpoint readers), hooks (PyTorch
forward hooks; torch imported when called), audio (WAV/FLAC samples, the synthetic tone),
protocol (the checks of port answers, shared by serve and port_check), serve, port_check, cli
(the `wbdump` command).
"""
from .dump import (COMPUTE_DTYPES, REQUIRED_ATTRS, SCHEMA, STAGES, STORAGE_TYPES, TOOL_VERSION,
                   VERSION, Dump, DumpError, DumpWriter, ModelDims, NameMap, TapSpec,
                   decoder_taps, encoder_taps, glob_match, hf_to_openai_name, is_decoder_tap,
                   load_ggml, load_safetensors, model_sha256, open_dump, openai_to_hf_name,
                   read_ggml_header, registry, sha256_file, stage_input, stage_label, stage_of,
                   stage_output, stage_taps, tap_order)
from .dump import _to_numpy  # noqa: F401  (torch tensors or arrays -> numpy)
from .dump import h5py  # noqa: F401  (None where h5py is missing: taps can still be recorded)
from .hooks import _selected  # noqa: F401  (tap selectors, as `wb dump --taps`)
from .hooks import (TapRecorder, hf_config, load_hf_model, load_openai_model, run_encoder,
                    strict_float32)
from .audio import SAMPLE_RATE, read_audio, synthetic_tone
from .protocol import PROTOCOL, ProtocolError
from .serve import serve
from .port_check import port_check

__version__ = VERSION
