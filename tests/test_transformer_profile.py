"""The profile's bookkeeping: exclusive thunk times, HLO instruction kinds, module attribution."""
from benchmarks import transformer_before_after as before_after
from benchmarks import transformer_profile as tp

HLO = """HloModule jit_train_step

%fused_dot (param_0: f32[4,4], param_1: f32[4,4]) -> f32[4,4] {
  %param_0 = f32[4,4]{1,0} parameter(0)
  %param_1 = f32[4,4]{1,0} parameter(1)
  ROOT %dot.1 = f32[4,4]{1,0} dot(%param_0, %param_1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%body (p: (s32[], f32[4,4])) -> (s32[], f32[4,4]) {
  %p = (s32[], f32[4,4]{1,0}) parameter(0)
  %gte = f32[4,4]{1,0} get-tuple-element(%p), index=1
  %exp.3 = f32[4,4]{1,0} exponential(%gte)
  %i = s32[] get-tuple-element(%p), index=0
  ROOT %t = (s32[], f32[4,4]{1,0}) tuple(%i, %exp.3)
}

ENTRY %main (a: f32[4,4]) -> f32[4,4] {
  %a = f32[4,4]{1,0} parameter(0)
  %ynn_fusion.2 = f32[4,4]{1,0} fusion(%a, %a), kind=kCustom, calls=%fused_dot, metadata={op_name="jit(train_step)/jvp(M)/block_0/mlp/Dense_0/dot_general"}
  %w = (s32[], f32[4,4]{1,0}) while(%init), condition=%cond, body=%body, metadata={op_name="jit(train_step)/transpose(jvp(M))/block_0/self_attention/while"}
  ROOT %copy.9 = f32[4,4]{0,1} copy(%a)
}
"""


def test_nested_thunks_count_once():
  got = tp._exclusive([("loop", 0, 100), ("a", 10, 20), ("b", 40, 30), ("after", 100, 5)])
  assert got == {"loop": 50, "a": 20, "b": 30, "after": 5}


def test_instructions_kinds_and_inherited_names():
  table = tp.instructions(HLO)
  assert table["ynn_fusion.2"][1] == "products"  # a fusion is what it calls
  assert table["exp.3"][1] == "exp/log"
  assert table["w"][1] == "loop control"
  assert table["copy.9"] == ("", "layout")
  # an instruction of a loop body without metadata is attributed to the loop that runs it
  assert tp.part_of(table["exp.3"][0]) == ("backward", "attention core")
  assert tp.part_of(table["ynn_fusion.2"][0]) == ("forward", "MLP")


def test_parts_by_module_and_pass():
  part = lambda path: tp.part_of("jit(train_step)/" + path)
  assert part("jvp(M)/backbone/block_1/self_attention/query/dot_general") == (
      "forward", "attention projections")
  assert part("transpose(jvp(M))/backbone/block_0/self_attention/query_key_value/dot_general") == (
      "backward", "attention projections")  # the fused q/k/v product's named scope
  assert part("transpose(jvp(M))/backbone/block_0/ln_mlp/mul") == ("backward", "layer norm")
  assert part("jvp(M)/backbone/positions/sin") == ("forward", "sinusoidal positions")
  assert part("add") == ("update", "optimizer, clip, metrics")
  assert tp.part_of("") == ("unattributed", "XLA copies without a source")


def test_before_after_rewrites_only_attnlab_imports():
  source = ("from attnlab import ops\nimport attnlab.models as m\nimport attnlab\n"
            "from attnlab.ops.chunked_attention import CHUNK\n"
            "from attnlabx import y\nx = 'attnlab'\n")
  assert before_after.rewrite_imports(source, "attnlab_old") == (
      "from attnlab_old import ops\nimport attnlab_old.models as m\nimport attnlab_old\n"
      "from attnlab_old.ops.chunked_attention import CHUNK\n"
      "from attnlabx import y\nx = 'attnlab'\n")
