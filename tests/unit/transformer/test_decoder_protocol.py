"""The samplers' IncrementalDecoder interface: GPT variants, the FastGPT copy and the guided view implement
it; anything else is refused with the missing members named."""
import pytest
import torch

from specvqgan.modules.transformer.decoder import GuidedGPT, IncrementalDecoder
from specvqgan.sampling import prepare_gpt, sample_tokens


@pytest.mark.parametrize('kind', ['feats', 'class', 'feats_class', 'plain'])
def test_every_decoder_implements_the_protocol(gpt_factory, kind):
    gpt, c = gpt_factory(kind, p_uncond=0.1)
    for dec in (gpt, prepare_gpt(gpt, 'int8'), GuidedGPT(gpt, 2.0)):
        assert isinstance(dec, IncrementalDecoder)
    assert gpt.cache_dtype_for(4) is None and prepare_gpt(gpt, 'bf16').cache_dtype_for(4) == torch.bfloat16
    cache = GuidedGPT(gpt, 2.0).new_cache(3)
    assert cache.batch_size == 6 and cache.max_len == gpt.get_block_size()


def test_a_non_decoder_is_refused(gpt_factory):
    _, c = gpt_factory('feats')

    class NotADecoder:
        pos_emb = torch.zeros(1, 8, 16)

    with pytest.raises(TypeError, match=r"NotADecoder is not an IncrementalDecoder \(missing \[.*'forward_cached'"):
        sample_tokens(NotADecoder(), c, 2)
