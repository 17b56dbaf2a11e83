"""Survivors of the adapters' mutation run (issue 16): why each one left survives, and the test
written for each one killed since, for bench/mutation.py's REASONS.

Every kill was checked by putting the mutant's code in place of the function (the mutant as
mutmut wrote it under mutants/), running the named test and seeing it fail; every mutant below
in REASONS was run against all of tests/adapters/test_{sfapi,firecrest,iri}_translate.py,
test_slurm_time.py, test_translate_health_files.py and test_tags.py and survived them.
``adapters.sfapi.translate.x_components_of__mutmut_{43,44,46,47,69,72,73}`` already have their
reasons in bench/mutation.py and are not repeated here.
"""

from __future__ import annotations

_SF = "adapters.sfapi.translate"
_FC = "adapters.firecrest.translate"
_IRI = "adapters.iri.translate"
_SLURM = "adapters.slurm"

_LOG_WORDS = ("not worth a test: the wording or case of an operator's log line; the tests check that"
              " it names what was seen (the job and the word)")

REASONS: dict[str, str] = {
    # -- Slurm ------------------------------------------------------------------------------
    f"{_SLURM}.x_base_state__mutmut_3": ("equivalent: native is a str; for '' both branches give '' (the"
                                         " guard only matters for None, which no caller passes)"),
    f"{_SLURM}.x_base_state__mutmut_4": ("equivalent: Slurm separates a state's words with one space"
                                         " ('CANCELLED by 123') and the text is stripped first; splitting on"
                                         " any blank differs only for tabs inside, where the mutant is no worse"),
    f"{_SLURM}.x_base_state__mutmut_7": "equivalent: only the first word is kept, however many splits are made",
    f"{_SLURM}.x_base_state__mutmut_10": "equivalent: only the first word is kept, however many splits are made",
    f"{_SLURM}.x_base_state__mutmut_12": ("equivalent: 'XXXX' is no Slurm word and no PBS letter, so an empty"
                                          " state still maps to None (unknown) in both translations"),
    f"{_SLURM}.x_base_state__mutmut_16": ("equivalent: no Slurm state word ends in 'X', so also stripping"
                                          " X's changes no known word"),
    f"{_SLURM}.x_parse_exit_code__mutmut_1": ("equivalent: '' then fails int() and returns None, as the"
                                              " short cut did"),
    f"{_SLURM}.x_parse_exit_code__mutmut_4": ("equivalent: '' then fails int() and returns None, as the"
                                              " short cut did"),
    # -- SF API -----------------------------------------------------------------------------
    f"{_SF}.x_health_of__mutmut_5": ("equivalent: None becomes 'xxxx' instead of '', both undocumented:"
                                     " unknown, and logged alike"),
    f"{_SF}.x_health_of__mutmut_11": _LOG_WORDS,
    f"{_SF}.x_health_of__mutmut_12": _LOG_WORDS,
    f"{_SF}.x_job_status__mutmut_19": _LOG_WORDS,
    f"{_SF}.x_job_status__mutmut_20": _LOG_WORDS,
    f"{_SF}.x_component_names__mutmut_17": ("equivalent: a missing system_type looks up 'XXXX' instead of '',"
                                            " neither in COMPONENT_OF_TYPE"),
    f"{_SF}.x_file_entries__mutmut_4": ("not worth a test: an ls entry without a name is not something the SF"
                                        " API sends (the field is optional only for leniency); both keep a"
                                        " placeholder entry, named '' or 'XXXX'"),
    f"{_SF}.x_file_entries__mutmut_22": "equivalent: only the part before the first ' -> ' is kept",
    f"{_SF}.x_file_entries__mutmut_25": "equivalent: only the part before the first ' -> ' is kept",
    f"{_SF}.x_file_entries__mutmut_29": "equivalent: a name without '/' is its own last component",
    f"{_SF}.x_file_entries__mutmut_33": "equivalent: only the last component is kept, however many splits",
    f"{_SF}.x_file_entries__mutmut_39": "equivalent: only the last component is kept, however many splits",
    # -- FirecREST --------------------------------------------------------------------------
    f"{_FC}.x_psij_state__mutmut_8": "equivalent: the text is one character long, so [:1] and [:2] are the same",
    f"{_FC}.x_job_status__mutmut_25": _LOG_WORDS,
    f"{_FC}.x_parse_health__mutmut_13": ("equivalent: 'up' ranked 4 instead of 3 is still the best; the order"
                                         " is the same"),
    f"{_FC}.x_parse_health__mutmut_19": ("not worth a test: on a tie (two services equally bad) it names the"
                                         " last instead of the first in the component's detail; the state is"
                                         " the same and which of them is named is an arbitrary choice"),
    f"{_FC}.x_parse_health__mutmut_77": "equivalent: SiteHealth.incidents defaults to []",
    # -- IRI --------------------------------------------------------------------------------
    f"{_IRI}.x_unavailable_error__mutmut_26": "equivalent: httpx headers are case-insensitive",
}

_T = "tests/adapters/"
_SF_T = _T + "test_sfapi_translate.py::"
_FC_T = _T + "test_firecrest_translate.py::"
_IRI_T = _T + "test_iri_translate.py::"


def _each(prefix: str, numbers: tuple[int, ...], test: str) -> dict[str, str]:
    return {f"{prefix}__mutmut_{n}": test for n in numbers}


KILLED_BY: dict[str, str] = {
    # -- Slurm ------------------------------------------------------------------------------
    f"{_SLURM}.x_parse_exit_code__mutmut_16": _SF_T + "test_an_exit_code_without_a_signal_is_the_code",
    **_each(f"{_SLURM}.x_format_walltime", (7, 20),
            _T + "test_slurm_time.py::test_the_broker_writes_days_as_slurm_does"),
    **_each(f"{_SLURM}.x_job_name", (2, 8, 9), _SF_T + "test_the_slurm_job_name_is_the_specs_made_safe_else_the_tag"),
    # -- SF API -----------------------------------------------------------------------------
    **_each(f"{_SF}.x_health_of", (8, 9, 10), _SF_T + "test_undocumented_words_are_logged_with_what_was_seen"),
    **_each(f"{_SF}.x_job_status", (14, 15), _SF_T + "test_undocumented_words_are_logged_with_what_was_seen"),
    **_each(f"{_SF}.x_job_status", (31, 35, 37), _SF_T + "test_a_job_keeps_its_id_and_slurms_own_words"),
    f"{_SF}.x_task_result__mutmut_6": _SF_T + "test_a_task_result_with_nested_json_is_read_whole",
    **_each(f"{_SF}.x_file_entries", (19, 37), _SF_T + "test_listed_names_are_kept_whole"),
    **_each(f"{_SF}.x_component_names", (5, 11, 12, 13, 14, 19, 20),
            _SF_T + "test_component_names_say_where_each_resources_outages_are_reported"),
    **_each(f"{_SF}.x_incidents_of", (7, 13, 19, 20, 27, 32, 33, 39, 40, 41, 42, 46, 47),
            _SF_T + "test_incidents_keep_extended_and_unstated_planned_outages_with_their_times"),
    # -- FirecREST --------------------------------------------------------------------------
    **_each(f"{_FC}.x_job_status", (10, 28), _FC_T + "test_a_job_state_given_as_a_one_word_list_is_read"),
    **_each(f"{_FC}.x_job_status", (15, 17), _FC_T + "test_a_pbs_job_finished_with_a_nonzero_exit_code_failed"),
    **_each(f"{_FC}.x_job_status", (20, 21), _FC_T + "test_an_unknown_job_state_is_logged_with_the_job_and_its_word"),
    **_each(f"{_FC}.x_parse_health", (4, 5, 6, 7, 8, 9, 10),
            _FC_T + "test_a_component_is_as_bad_as_its_worst_service_in_either_order"),
    **_each(f"{_FC}.x_parse_health", (41, 42, 43, 56, 74),
            _FC_T + "test_health_details_name_the_system_and_path_and_services_of_unknown_types_keep_their_name"),
    **_each(f"{_FC}.x_parse_health", (28, 30, 34, 35, 38),
            _FC_T + "test_a_system_without_health_does_not_hide_the_next_ones"),
    **_each(f"{_FC}.x_file_entry", (17, 18, 19), _FC_T + "test_file_names_are_their_last_path_component"),
    **_each(f"{_FC}.x_firecrest_message", tuple(range(1, 17)),
            _FC_T + "test_firecrest_message_is_firecrests_or_keycloaks_own_words"),
    # -- IRI --------------------------------------------------------------------------------
    f"{_IRI}.x_file_entry__mutmut_12": _IRI_T + "test_a_file_keeps_its_name",
    **_each(f"{_IRI}.x_task_error",
            (10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 23, 24, 25, 27, 28, 29, 31, 32, 34, 35, 36, 37, 38),
            _IRI_T + "test_a_failed_task_says_what_failed_where"),
    **_each(f"{_IRI}.x_filesystem_name", (9, 10), _IRI_T + "test_filesystem_of_a_lustre_path"),
    f"{_IRI}.x_problem_of__mutmut_2": _IRI_T + "test_a_problem_is_read_from_its_json",
    **_each(f"{_IRI}.x_problem_detail", (3, 4),
            _IRI_T + "test_a_problems_detail_falls_back_to_its_title_then_the_status"),
    **_each(f"{_IRI}.x_unavailable_error", (3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14),
            _IRI_T + "test_a_resource_that_is_down_is_a_component_down"),
    **_each(f"{_IRI}.x_unavailable_error", (15, 16, 17, 18, 20, 21, 22, 23, 25),
            _IRI_T + "test_a_busy_service_is_overloaded_and_says_when_to_come_back"),
}
