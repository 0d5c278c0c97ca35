"""Fine-tune vs RAG vs prompt engineering."""

from planner import advisor


def answers(*yes):
    return {q["id"]: q["id"] in yes for q in advisor.questions()}


def test_style_and_data_point_to_fine_tuning():
    v = advisor.verdict(answers("prompt_fails", "enough_data", "consistency"))
    assert v.approach == "finetune" and len(v.reasons) == 3


def test_vetoes_say_what_to_do_instead():
    v = advisor.verdict(answers("prompt_fails", "knowledge_changes"))
    assert v.approach == "rag" and not v.fine_tune and "vector" in v.instead
    v = advisor.verdict(answers("enough_data", "prompt_works"))
    assert v.approach == "prompt" and v.instead


def test_behaviour_plus_external_knowledge_is_both():
    assert advisor.verdict(answers("prompt_fails", "external_info")).approach == "finetune+rag"
    assert advisor.verdict(answers()).approach == "prompt"
