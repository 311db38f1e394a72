"""The API's ranking comes from the settings (``search_*``): the chosen defaults, and
each setting reaching :class:`pipeline.search.ranking.Ranking`."""

from __future__ import annotations

import pytest

from api.state import ranking_from
from config.errors import ConfigError
from config.settings import load_settings
from pipeline.search.ranking import Ranking


def test_the_default_ranking_is_the_one_chosen_on_the_tuning_half() -> None:
    assert ranking_from(load_settings(env={})) == Ranking(
        fusion="scores", merge_definitions=True, file_boost=0.2, named_first_share=0.5
    )


def test_each_ranking_setting_reaches_the_ranking() -> None:
    env = {
        "QUARRY_SEARCH_FUSION": "rrf",
        "QUARRY_SEARCH_RRF_K": "20",
        "QUARRY_SEARCH_WEIGHT_VECTOR": "0.5",
        "QUARRY_SEARCH_WEIGHT_LEXICAL": "2",
        "QUARRY_SEARCH_IDENTIFIER_SHARE": "0.25",
        "QUARRY_SEARCH_IDENTIFIER_WEIGHT_VECTOR": "0.1",
        "QUARRY_SEARCH_IDENTIFIER_WEIGHT_LEXICAL": "3",
        "QUARRY_SEARCH_MERGE_DEFINITIONS": "false",
        "QUARRY_SEARCH_NAMED_FIRST_SHARE": "0",
        "QUARRY_SEARCH_FILE_BOOST": "0",
        "QUARRY_SEARCH_NAME_BOOST": "0.1",
        "QUARRY_SEARCH_SYMBOL_WORDS_BOOST": "0.3",
        "QUARRY_SEARCH_PATH_PENALTY": "0.5",
    }
    assert ranking_from(load_settings(env=env)) == Ranking(
        fusion="rrf",
        rrf_k=20,
        weight_vector=0.5,
        weight_lexical=2.0,
        identifier_share=0.25,
        identifier_weight_vector=0.1,
        identifier_weight_lexical=3.0,
        name_boost=0.1,
        symbol_words_boost=0.3,
        path_penalty=0.5,
        file_boost=0.0,
        merge_definitions=False,
        named_first_share=0.0,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("QUARRY_SEARCH_FUSION", "mean"), ("QUARRY_SEARCH_PATH_PENALTY", "1.5")],
)
def test_a_bad_ranking_setting_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env={name: value})
