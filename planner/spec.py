"""A model's architecture as ftplan counts it (ModelSpec): its shapes, the parameter counts
and linear-layer shapes derived from them, and its family's module table
(knowledge/targets.toml). planner/models.py resolves a name, a config or a size to one."""

from __future__ import annotations

from dataclasses import dataclass, replace

from planner import knowledge
from planner.errors import ModelError

# The linear layers whose shapes ftplan knows (ModelSpec.module_shape).
MODULE_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "query_key_value", "dense", "gate_proj", "up_proj",
                "down_proj", "gate_up_proj", "dense_h_to_4h", "dense_4h_to_h", "fc1", "fc2", "c_attn", "c_proj", "c_fc",
                "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "out_proj", "in_proj", "w1", "w2", "w3")

# A transformers-5 mixture of experts' fused expert weights, as PEFT's target_parameters name
# them (modeling_mixtral.py MixtralExperts, and the same in qwen2_moe, qwen3_moe, olmoe,
# deepseek_v2/v3): gate_up_proj (experts, 2 x intermediate, hidden), down_proj (experts,
# hidden, intermediate). `--targets experts` adapts them (ModelSpec.target_parameters).
EXPERT_PARAMETERS = ("experts.gate_up_proj", "experts.down_proj")

# model_types of hybrids whose other layers are LFM2's gated short convolutions (ModelSpec.conv_layers)
CONV_HYBRID_TYPES = {"lfm2"}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool
    mlp: str = "gated"            # "gated" (gate/up/down) or "plain" (up/down)
    norm: str = "rmsnorm"         # "layernorm" carries a bias
    norms_per_layer: int = 2
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_intermediate_size: int = 0  # a shared expert every token passes through
    shared_expert_gated: bool = True   # Qwen2-MoE gates it per token (shared_expert_gate); DeepSeek adds it as it is
    dense_layers: int = 0              # a MoE model's first layers, whose MLP is dense (DeepSeek's first_k_dense_replace)
    # multi-head latent attention (DeepSeek-V2/V3, modeling_deepseek_v2.py DeepseekV2Attention): keys and values
    # come up from a latent of kv_lora_rank (kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj), queries from one of
    # q_lora_rank where it is set (q_a_proj, q_a_layernorm, q_b_proj); head_dim is a query/key head's width (its
    # unrotated part and qk_rope_head_dim, rotated, one key head shared by all), v_head_dim a value head's
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # hybrid layers: layers whose token mixer is a gated short convolution, not attention (LFM2,
    # modeling_lfm2.py Lfm2ShortConv: in_proj to B, C and x, a depthwise causal conv1d of
    # conv_kernel taps over B*x, C times its output, out_proj)
    conv_layers: int = 0
    conv_kernel: int = 0
    conv_bias: bool = False
    hub_id: str = ""
    path: str = ""                # local directory or config.json it came from
    published_params: int = 0
    source: str = ""
    # Read from the model's own code (planner/inventory.py) where the config is not a catalog family:
    attention_modules: tuple[str, ...] = ()   # LoRA target names of the attention projections
    # PEFT, asked for the MLP's names, adapts the fused experts instead (Inventory.mlp_lora_moves_to_experts):
    # all-linear is then the attention projections, and an MLP name is refused
    mlp_lora_moves_to_experts: bool = False
    mlp_modules: tuple[str, ...] = ()         # LoRA target names of the feed-forward (dense) linear layers
    # the fused expert weights PEFT adapts for `--targets experts`: transformers 5's names, or what the
    # model's own code holds (planner/inventory.py); () where its experts are laid out otherwise
    expert_parameters: tuple[str, ...] = EXPERT_PARAMETERS
    derived_from: str = ""                    # how transformers' own build of the config was read
    bnb_linear_params: int = -1               # weights bitsandbytes quantizes as the script loads them (-1: the formula)
    # what the model does to its logits after the head (its forward; a loss that multiplies the
    # head's weight itself must do the same): a scale (Cohere's logit_scale, 1 / Granite's
    # logits_scaling), then soft-capping (Gemma 2's final_logit_softcapping: cap * tanh(x / cap))
    logit_scale: float = 1.0
    logit_softcap: float = 0.0
    sdpa: bool = True                         # transformers runs this architecture with sdpa
    flex: bool = True                         # and with FlexAttention (knowledge/targets.toml `flex` for a family)

    # ------------------------------------------------------------------ widths
    @property
    def q_width(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def latent_attention(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def v_width(self) -> int:
        """The values' width, and the attention output's: a latent model's value heads are their own width."""
        return self.num_heads * self.v_head_dim if self.latent_attention else self.kv_width

    @property
    def attn_out_width(self) -> int:
        """The attention's output, o_proj's input: one value head's width per query head."""
        if self.conv_layer:
            return self.hidden_size
        return self.num_heads * self.v_head_dim if self.latent_attention else self.q_width

    @property
    def kv_up_width(self) -> int:
        """kv_b_proj's output: each head's unrotated key part and its value."""
        return self.num_heads * (self.head_dim - self.qk_rope_head_dim + self.v_head_dim)

    @property
    def conv_layer(self) -> bool:
        """Every layer of this spec mixes tokens by its short convolution (one kind of a hybrid's layers)."""
        return self.conv_layers > 0 and self.conv_layers == self.num_layers

    @property
    def attention_layers(self) -> int:
        return self.num_layers - self.conv_layers

    def layer_groups(self) -> tuple[tuple[int, ModelSpec], ...]:
        """The model's layers as runs of alike layers: (count, a spec every layer of which is of
        that kind). One run, this spec, unless a MoE model's first layers are dense or a hybrid
        has convolution layers beside its attention layers."""
        if 0 < self.conv_layers < self.num_layers:
            attention = replace(self, num_layers=self.attention_layers, conv_layers=0)
            conv = replace(self, num_layers=self.conv_layers)
            return ((attention.num_layers, attention), (conv.num_layers, conv))
        if not (self.is_moe and self.dense_layers):
            return ((self.num_layers, self),)
        dense = replace(self, num_layers=self.dense_layers, dense_layers=0, num_experts=0, experts_per_token=0,
                        moe_intermediate_size=0, shared_intermediate_size=0)
        moe = replace(self, num_layers=self.num_layers - self.dense_layers, dense_layers=0)
        return ((dense.num_layers, dense), (moe.num_layers, moe))

    @property
    def uniform(self) -> bool:
        return len(self.layer_groups()) == 1

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def token_intermediate_size(self) -> int:
        """The MLP width one token passes through: a MoE token's routed experts and its shared
        expert, where there is one."""
        if not self.is_moe:
            return self.intermediate_size
        return self.moe_intermediate_size * self.experts_per_token + self.shared_intermediate_size

    # ------------------------------------------------------------------ parameter counts
    def embedding_params(self) -> int:
        """Input embedding plus an untied lm_head."""
        per_matrix = self.vocab_size * self.hidden_size
        return per_matrix if self.tied_embeddings else 2 * per_matrix

    def attention_params_per_layer(self) -> int:
        """The token mixer's parameters: attention, or a convolution layer's."""
        h, q, kv = self.hidden_size, self.q_width, self.kv_width
        if self.conv_layer:
            biases = (3 * h + h + h) if self.conv_bias else 0
            return self._attention_weights() + h * self.conv_kernel + biases
        if self.latent_attention:
            weights = self._attention_weights()
            latent_in = (self.q_lora_rank if self.q_lora_rank else 0) + self.kv_lora_rank + self.qk_rope_head_dim
            biases = (latent_in if self.qkv_bias else 0) + (h if self.o_bias else 0)
            return weights + biases + self.q_lora_rank + self.kv_lora_rank  # q_a_layernorm, kv_a_layernorm
        weights = h * q + 2 * h * kv + q * h
        biases = (q + 2 * kv if self.qkv_bias else 0) + (h if self.o_bias else 0)
        qk_norms = 2 * self.head_dim if self.qk_norm else 0
        return weights + biases + qk_norms

    def _attention_weights(self) -> int:
        """The attention projections' weights: their shapes multiplied out."""
        return sum(fan_in * fan_out for fan_in, fan_out in self._attention_shapes().values())

    def _attention_shapes(self) -> dict[str, tuple[int, int]]:
        h, q, kv = self.hidden_size, self.q_width, self.kv_width
        if self.conv_layer:
            return {"in_proj": (h, 3 * h), "out_proj": (h, h)}
        if not self.latent_attention:
            return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h)}
        query = {"q_a_proj": (h, self.q_lora_rank), "q_b_proj": (self.q_lora_rank, q)} if self.q_lora_rank else {"q_proj": (h, q)}
        return {**query, "kv_a_proj_with_mqa": (h, self.kv_lora_rank + self.qk_rope_head_dim),
                "kv_b_proj": (self.kv_lora_rank, self.kv_up_width), "o_proj": (self.v_width, h)}

    def mlp_params(self, intermediate: int) -> int:
        """One feed-forward block of width `intermediate`."""
        h = self.hidden_size
        if self.mlp == "gated":
            return 3 * h * intermediate + ((2 * intermediate + h) if self.mlp_bias else 0)
        return 2 * h * intermediate + ((intermediate + h) if self.mlp_bias else 0)

    def mlp_params_per_layer(self) -> int:
        if self.is_moe:
            router = self.hidden_size * self.num_experts
            return self.num_experts * self.mlp_params(self.moe_intermediate_size) + router + self.shared_expert_params()
        return self.mlp_params(self.intermediate_size)

    def shared_expert_params(self) -> int:
        """The shared expert's MLP and its gate, a linear layer to one logit (transformers
        modeling_qwen2_moe: shared_expert, shared_expert_gate); DeepSeek's have no gate
        (modeling_deepseek_v2: shared_experts)."""
        if not self.shared_intermediate_size:
            return 0
        return self.mlp_params(self.shared_intermediate_size) + (self.hidden_size if self.shared_expert_gated else 0)

    def norm_params(self) -> int:
        return self.hidden_size * (2 if self.norm == "layernorm" else 1)

    def layer_params(self) -> int:
        """One layer's parameters: the largest kind of layer where they differ."""
        if not self.uniform:
            return max(group.layer_params() for _, group in self.layer_groups())
        return (
            self.attention_params_per_layer()
            + self.mlp_params_per_layer()
            + self.norms_per_layer * self.norm_params()
        )

    def over_layers(self, per_layer) -> int:
        """A per-layer count summed over every layer, each run of alike layers by its own kind."""
        return sum(n * per_layer(group) for n, group in self.layer_groups())

    def total_params(self) -> int:
        """All parameters: blocks, embeddings (tied counted once) and the final norm."""
        return self.over_layers(ModelSpec.layer_params) + self.embedding_params() + self.norm_params()

    def active_params(self) -> int:
        """Parameters one token passes through (MoE: only its experts)."""
        if not self.is_moe:
            return self.total_params()
        return self.total_params() - self.over_layers(
            lambda g: (g.num_experts - g.experts_per_token) * g.mlp_params(g.moe_intermediate_size) if g.is_moe else 0)

    def linear_params(self) -> int:
        """Weights of the blocks' linear layers, experts included: the matmul FLOPs of a token
        that passed through every expert."""
        return self.over_layers(ModelSpec._layer_linear_params)

    def _layer_linear_params(self) -> int:
        h = self.hidden_size
        attn = self._attention_weights()
        if self.is_moe:
            per_expert = (3 if self.mlp == "gated" else 2) * h * self.moe_intermediate_size
            mlp = self.num_experts * per_expert + self.shared_expert_params()  # the shared expert's layers are nn.Linear
        else:
            mlp = (3 if self.mlp == "gated" else 2) * h * self.intermediate_size
        return attn + mlp

    def expert_params(self) -> int:
        """Fused expert weights (3-D parameters in transformers 5, not nn.Linear)."""
        return self.over_layers(
            lambda g: g.num_experts * (3 if g.mlp == "gated" else 2) * g.hidden_size * g.moe_intermediate_size)

    @property
    def widest_intermediate_size(self) -> int:
        """The widest MLP a token passes through in any layer."""
        return max(group.token_intermediate_size for _, group in self.layer_groups())

    def quantized_params(self) -> int:
        """Weights bitsandbytes stores in 4 bits: the blocks' nn.Linear layers. transformers 5
        fuses MoE experts into 3-D parameters, which its bnb integration leaves in bf16
        (measured on the H200: 705 MB of a Mixtral-shaped model's 861 MB stayed bf16;
        docs/guides.md#mixture-of-experts), and converts only modules whose type is exactly
        nn.Linear (a family's table says `bnb_quantizes = false` where its layers subclass it).
        Counted from the model's own code where it was built (planner/inventory.py)."""
        if self.bnb_linear_params >= 0:
            return self.bnb_linear_params
        if (family_table(self.family) or {}).get("bnb_quantizes", True) is False:
            return 0
        return self.linear_params() - self.expert_params()

    def active_linear_params(self) -> int:
        """Linear weights one token multiplies by: the experts it is routed to, not all of them."""
        if not self.is_moe:
            return self.linear_params()
        return self.linear_params() - self.expert_params() * (self.num_experts - self.experts_per_token) // self.num_experts

    # ------------------------------------------------------------------ module shapes
    def module_shape(self, name: str) -> tuple[int, int, int]:
        """(in_features, out_features, copies per layer) of a named linear layer. A model whose
        layers differ (layer_groups) answers for the first kind of layer that has it."""
        if not self.uniform:
            for _, group in self.layer_groups():
                if name in group._shapes():
                    return group.module_shape(name)
        shapes = self._shapes()
        if name not in shapes:
            raise ModelError(
                f"{self.name} has no linear layer named {name!r}; use --targets attention, "
                f"all-linear, or a comma list of {', '.join(self.target_modules('all-linear'))}"
            )
        fan_in, fan_out = shapes[name]
        return fan_in, fan_out, 1

    def module_names(self) -> set[str]:
        """The linear layers the model's layers have (any kind of layer)."""
        return set().union(*(group._shapes() for _, group in self.layer_groups()))

    def _shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of every linear layer a layer of this uniform spec may have."""
        h, q, kv, i = self.hidden_size, self.q_width, self.kv_width, self.intermediate_size
        if self.is_moe:  # the only MLP linear layers of a MoE block are its shared expert's
            i = self.shared_intermediate_size
        shapes = {
            "q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "qkv_proj": (h, q + 2 * kv), "query_key_value": (h, q + 2 * kv), "dense": (q, h),
            "c_attn": (h, q + 2 * kv), "c_proj": (q, h),
        }
        shapes["out_proj"] = (q, h)  # LFM2's name for o_proj
        if self.latent_attention or self.conv_layer:
            shapes = self._attention_shapes()
        if i:
            shapes.update({"gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h), "gate_up_proj": (h, 2 * i),
                           "dense_h_to_4h": (h, i), "dense_4h_to_h": (i, h), "fc1": (h, i), "fc2": (i, h), "c_fc": (h, i),
                           "w1": (h, i), "w3": (h, i), "w2": (i, h)})
        if self.is_moe and self.shared_intermediate_size and self.shared_expert_gated:
            shapes["shared_expert_gate"] = (h, 1)
        return shapes

    def target_modules(self, targets: str) -> list[str]:
        """Module names for --targets: a comma list of 'attention', 'all-linear', module names
        and 'experts' (the fused expert weights, which are parameters, not modules:
        target_parameters)."""
        fam = self.modules_table()
        names: list[str] = []
        for item in _target_items(targets):
            if item == "attention":
                names += fam["attention"]
            elif item == "all-linear":
                names += list(fam["attention"]) + ([] if self.mlp_lora_moves_to_experts else self._mlp_linears(fam))
            elif item == "experts":
                continue  # parameters, not modules: target_parameters
            else:
                names.append(self._known_module(item, fam))
        return list(dict.fromkeys(names))

    def _known_module(self, name: str, fam: dict) -> str:
        mlp = self._mlp_linears(fam)
        if self.mlp_lora_moves_to_experts and name in mlp:
            raise ModelError(
                f"{self.name}: PEFT puts the LoRA asked for {name} on the fused experts, not on the dense and shared "
                f"MLPs of that name (its conversion of transformers-v4 targets for this architecture); "
                f"use --targets attention, or attention,experts to adapt the experts")
        if name not in set(fam["attention"]) | set(mlp):
            known = sorted(set(fam["attention"]) | set(mlp)) + (["experts"] if self.is_moe else [])
            raise ModelError(
                f"{self.name} has no linear layer named {name!r}; use --targets attention, all-linear, "
                f"or a comma list of {', '.join(known)}"
            )
        return name

    def target_parameters(self, targets: str) -> list[str]:
        """The fused expert weights LoRA adapts when --targets lists 'experts' (PEFT's
        target_parameters, tuners/lora/layer.py ParamWrapper)."""
        if "experts" not in _target_items(targets):
            return []
        if not self.is_moe:
            raise ModelError(f"{self.name} is not a mixture of experts; drop 'experts' from --targets")
        if not self.expert_parameters or self.mlp != "gated":
            raise ModelError(f"{self.name}'s experts are not laid out as transformers 5 fuses them (gate_up_proj and "
                             f"down_proj), so ftplan does not count LoRA on them; use --targets attention or all-linear")
        return list(self.expert_parameters)

    def expert_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of one expert's slice of each fused expert weight."""
        h, i = self.hidden_size, self.moe_intermediate_size
        gate_up, down = EXPERT_PARAMETERS
        return {gate_up: (h, 2 * i), down: (i, h)}

    def expert_lora_params(self, parameters: list[str], rank: int) -> int:
        """LoRA on fused expert weights: PEFT's ParamWrapper gives each weight an A of in x
        (rank x experts) and a B of (rank x experts) x out, one rank-r pair per expert
        (tuners/lora/layer.py ParamWrapper.update_layer). Counted in the MoE layers."""
        return self.over_layers(lambda g: sum(rank * g.num_experts * sum(g.expert_shapes()[p]) for p in parameters)
                                if g.is_moe else 0)

    def expert_weight_elements(self, parameters: list[str]) -> int:
        """One MoE layer's fused expert weights of these names."""
        return self.num_experts * sum(a * b for a, b in (self.expert_shapes()[p] for p in parameters))

    @property
    def moe_layers(self) -> int:
        return self.num_layers - self.dense_layers if self.is_moe else 0

    def _mlp_linears(self, fam: dict) -> list[str]:
        """The feed-forward nn.Linear layers LoRA can wrap. MoE experts are fused 3-D parameters
        in transformers 5, not nn.Linear: a MoE block offers only its shared expert's layers
        and their gate, where it has one; a dense first layer, its MLP."""
        names: list[str] = []
        for _, group in self.layer_groups():
            shapes = group._shapes()
            names += [m for m in list(fam["mlp"]) + ["shared_expert_gate"] if m in shapes and m not in names]
        return names

    def lora_params(self, modules: list[str], rank: int, dora: bool = False) -> int:
        """LoRA's trainable parameters on the named modules of every block: r x (in + out) per
        adapted linear (Hu et al. 2021, eq. 3); DoRA adds a magnitude vector of `out` per layer
        (Liu et al. 2024, eq. 5). A module counts in the layers that have it."""
        def per_layer(group: ModelSpec) -> int:
            shapes = group._shapes()
            return sum(rank * (shapes[m][0] + shapes[m][1]) + (shapes[m][1] if dora else 0) for m in modules if m in shapes)
        return self.over_layers(per_layer)

    def modules_table(self) -> dict:
        """The family's row of knowledge/targets.toml, or the module names read from the
        model's own code; never another family's names."""
        if self.attention_modules:
            return {"name": self.family, "attention": list(self.attention_modules), "mlp": list(self.mlp_modules)}
        row = family_table(self.family)
        if row is None:
            raise ModelError(f"{self.name}: ftplan has no module table for the {self.family!r} architecture and could not "
                             f"read one from its code; install torch and transformers (pip install 'ftplan[train]') "
                             f"so ftplan builds the model on the meta device and reads its layers")
        return row

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["total_params"] = self.total_params()
        return d


# ---------------------------------------------------------------------- families
def family_table(family: str) -> dict | None:
    """knowledge/targets.toml's row for a family, or None where there is none."""
    for row in knowledge.rows("targets", "family"):
        if row["name"] == family:
            return row
    return None


def _target_items(targets: str) -> list[str]:
    names = [t.strip() for t in targets.split(",") if t.strip()]
    if not names:
        raise ModelError("--targets is empty; use attention, all-linear, or a comma list of module names (and experts)")
    return names
