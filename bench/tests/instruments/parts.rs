//! The instruments that measure one part each: the avatar bridge (`ipc`),
//! the prefill batch (`batch`), the emotion reader (`emotion`), the store
//! (`store`), the model's perplexity (`perplexity`), what Kira says
//! (`persona`) and what she remembers (`recall`).

use super::{bench_in, common};
use common::{assert_bad_input, assert_success, json_output, text};

#[test]
fn ipc_reports_every_figure_and_delivers_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let report = json_output(bench_in(dir.path()).args(["ipc", "--json", "--bursts", "1000", "--seconds", "0.3"]));
    for mode in ["unbatched", "batched"] {
        let figures = &report[mode];
        let latency = &figures["burst10_latency_us"];
        assert!(latency["p50"].as_f64().unwrap() > 0.0 && latency["p99"].as_f64() >= latency["p50"].as_f64());
        assert!(figures["throughput_commands_per_s"].as_f64().unwrap() > 0.0, "{figures}");
        assert_eq!(figures["commands_applied"], figures["commands_handed"], "{mode}: every command applied");
        if cfg!(target_os = "linux") {
            assert!(figures["cpu_us_per_command"].as_f64().unwrap() > 0.0);
        }
    }
    let batched = &report["batched"];
    assert!(batched["writes"].as_u64().unwrap() * 5 < batched["commands_applied"].as_u64().unwrap(), "{batched}");
}

#[test]
fn batch_compares_every_size_with_the_fixed_one() {
    let dir = tempfile::tempdir().unwrap();
    let report = json_output(
        bench_in(dir.path())
            .args(["batch", "--json", "--runs", "1", "--batch-sizes", "16,64", "--prompt-tokens", "8,100", "--model"])
            .arg(common::small_model()),
    );
    // Workly's own size (512 at the default context) joins the listed ones.
    assert_eq!(report["fixed_batch_size"], 512);
    assert_eq!(report["batch_sizes"], serde_json::json!([16, 64, 512]));
    let rows = report["rows"].as_array().unwrap();
    let lengths: Vec<u64> = rows.iter().map(|row| row["prompt_tokens"].as_u64().unwrap()).collect();
    assert_eq!(lengths, [8, 100]);
    for row in rows {
        let speeds = row["tokens_per_s"].as_array().unwrap();
        assert_eq!(speeds.len(), 3, "{row}");
        assert!(speeds.iter().all(|speed| speed.as_f64().unwrap() > 0.0), "{row}");
        assert!([16, 64, 512].contains(&row["best_batch_size"].as_u64().unwrap()), "{row}");
        assert!(row["gain_percent"].as_f64().unwrap() >= 0.0, "the best is at least the fixed one: {row}");
    }
    // It helps only where a size that splits the prompt otherwise beats the
    // fixed one by 5 % and by more than the worst noise of the run.
    let noise = rows.iter().map(|row| row["noise_percent"].as_f64().unwrap()).fold(0.0, f64::max);
    assert_eq!(report["noise_percent"].as_f64().unwrap(), noise, "{report}");
    let gain = report["best_gain_percent"].as_f64().unwrap();
    assert_eq!(report["dynamic_helps"].as_bool().unwrap(), gain >= 5.0 && gain > noise, "{report}");
    // 8 tokens fit one batch of every size: nothing can gain there.
    assert_eq!(rows[0]["gain_percent"], 0.0, "{report}");
    // Bad sizes are refused by the argument parser.
    let output = bench_in(dir.path()).args(["batch", "--batch-sizes", "0"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn emotion_without_a_model_scores_the_labelled_set() {
    let dir = tempfile::tempdir().unwrap();
    let report = json_output(bench_in(dir.path()).args(["emotion", "--no-model", "--json"]));
    let lexicon = &report["lexicon"];
    let sentences = lexicon["sentences"].as_u64().unwrap();
    assert!(sentences >= 300);
    let macro_f1 = lexicon["macro_f1"].as_f64().unwrap();
    assert!(macro_f1 >= 0.75, "macro-F1 {macro_f1}");
    assert!(lexicon["accuracy"].as_f64().unwrap() > 0.0);
    assert_eq!(lexicon["accuracy_by_language"].as_object().unwrap().len(), 2);
    let classes = lexicon["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 6);
    for class in classes {
        for field in ["precision", "recall", "f1"] {
            assert!((0.0..=1.0).contains(&class[field].as_f64().unwrap()), "{class}");
        }
    }
    let confusion = lexicon["confusion"].as_object().unwrap();
    assert_eq!(confusion.len(), 6);
    let total: u64 =
        confusion.values().flat_map(|row| row.as_object().unwrap().values()).map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(total, sentences);
    let right: u64 = confusion.iter().map(|(label, row)| row[label].as_u64().unwrap()).sum();
    assert_eq!(lexicon["mistakes"].as_array().unwrap().len() as u64, sentences - right);
    assert!(report["tags"].is_null());
}

#[test]
fn emotion_as_text_shows_the_matrix_and_refuses_zero_turns() {
    let dir = tempfile::tempdir().unwrap();
    let output = bench_in(dir.path()).args(["emotion", "--no-model"]).output().unwrap();
    assert_success(&output);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("macro-F1"), "{stdout}");
    assert!(stdout.contains("confusion (rows: label, columns: answer)"), "{stdout}");
    assert!(stdout.contains("not measured (--no-model)"), "{stdout}");
    let output = bench_in(dir.path()).args(["emotion", "--turns", "0"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}

#[test]
fn emotion_with_a_model_counts_tagged_replies() {
    let dir = tempfile::tempdir().unwrap();
    let report = json_output(
        bench_in(dir.path()).args(["emotion", "--json", "--turns", "2", "--model"]).arg(common::small_model()),
    );
    let tags = &report["tags"];
    assert_eq!(tags["replies"], 2);
    assert_eq!(tags["transcript"].as_array().unwrap().len(), 2);
    let with_tag = tags["replies_with_tag"].as_u64().unwrap();
    assert!(with_tag <= 2);
    assert_eq!(tags["share"].as_f64().unwrap(), with_tag as f64 / 2.0);
    assert!(tags["model"].as_str().is_some_and(|name| !name.is_empty()));
}

#[test]
fn store_reports_append_time_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let report = json_output(bench_in(dir.path()).args(["store", "--json", "--exchanges", "50"]));
    assert_eq!(report["exchanges"], 50);
    let median = report["append_median_ms"].as_f64().unwrap();
    assert!(median > 0.0 && median <= report["append_p99_ms"].as_f64().unwrap(), "{report}");
    assert!(report["rss_after_bytes"].as_u64().unwrap() > 0);
    // The temporary database is gone afterwards.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn recall_scores_extraction_recall_cost_and_replies() {
    let dir = tempfile::tempdir().unwrap();
    common::link_embedder(dir.path());
    let report = json_output(
        bench_in(dir.path())
            .args(["recall", "--json", "--sizes", "10,100", "--unrelated-turns", "20", "--questions", "1", "--model"])
            .arg(common::small_model()),
    );
    let extraction = report["extraction"].as_array().unwrap();
    assert_eq!(extraction.len(), 4, "two sets, two languages");
    for score in extraction {
        let (kept, correct) = (score["kept"].as_u64().unwrap(), score["correct"].as_u64().unwrap());
        assert!(kept > 0 && correct <= kept, "{score}");
        assert_eq!(score["precision"].as_f64().unwrap(), correct as f64 / kept as f64);
    }
    let recall = report["recall"].as_array().unwrap();
    let sets: Vec<(&str, &str)> =
        recall.iter().map(|score| (score["set"].as_str().unwrap(), score["language"].as_str().unwrap())).collect();
    let expected =
        ["tuned on", "held out", "second held out", "third held out"].map(|set| [(set, "en"), (set, "fr")]).concat();
    assert_eq!(sets, expected);
    for score in recall {
        let facts = match score["set"].as_str() {
            Some("tuned on") => 10,
            Some("held out") => 15,
            Some("second held out") => 20,
            _ => 25,
        };
        assert_eq!((score["facts"].as_u64(), score["unrelated_turns"].as_u64()), (Some(facts), Some(20)), "{score}");
        assert!(score["facts_kept"].as_u64().unwrap() <= facts, "{score}");
        let questions = score["questions"].as_array().unwrap();
        assert_eq!(questions.len() as u64, facts);
        let found =
            |rank: &str| questions.iter().filter(|asked| asked[rank].as_u64().is_some_and(|rank| rank <= 5)).count();
        let share = |rank: &str| found(rank) as f64 / facts as f64;
        assert_eq!(score["recall_at_5"].as_f64().unwrap(), share("rank"), "{score}");
        assert_eq!(score["recall_at_5_words"].as_f64().unwrap(), share("rank_words"), "{score}");
        assert_eq!(score["recall_at_5_meaning"].as_f64().unwrap(), share("meaning_rank"), "{score}");
        assert!(score["held_out_chit_chat_memories"].as_f64().is_some_and(|memories| memories <= 5.0), "{score}");
        for asked in questions {
            assert!(asked["planted_cosine"].as_f64().is_some_and(|cosine| (-1.0..=1.0).contains(&cosine)), "{asked}");
        }
    }
    let cost = report["cost"].as_array().unwrap();
    assert_eq!(cost.iter().map(|cost| cost["memories"].as_u64().unwrap()).collect::<Vec<_>>(), [10, 100]);
    assert!(
        cost.iter().all(|cost| cost["median_ms"].as_f64().unwrap() > 0.0 && cost["database_bytes"].as_u64() > Some(0))
    );
    let answers = &report["answers"];
    assert!(answers["first_text_median_ms"].as_f64().unwrap() > 0.0, "{answers}");
    assert_eq!(answers["replies"].as_array().unwrap().len(), 2, "one question of each language");
    assert!(answers["model"].as_str().is_some_and(|name| !name.is_empty()));
    assert!(answers["chit_chat_first_text_median_ms"].as_f64().unwrap() > 0.0, "{answers}");
    // The model as a second extractor, where the rules keep nothing.
    for by_model in report["model_extraction"].as_array().unwrap() {
        let count = |field: &str| by_model[field].as_u64().unwrap();
        assert!(
            count("rules_right") <= count("rules_kept") && count("model_right") <= count("model_kept"),
            "{by_model}"
        );
        let with_model = (count("rules_right") + count("model_right")) as f64 / count("with_facts") as f64;
        assert_eq!(by_model["recall_with_model"].as_f64().unwrap(), with_model, "{by_model}");
    }
    // The long conversations: turns left the small context, recaps were written aside.
    let threads = report["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2);
    for thread in threads {
        assert_eq!(thread["turns"], 14, "{thread}");
        let recaps = thread["recaps"].as_u64().unwrap();
        assert!(recaps >= 1 && !thread["recap"].as_str().unwrap().is_empty(), "{thread}");
        assert!(thread["covered_messages"].as_u64().unwrap() >= 8, "{thread}");
    }
    // The temporary databases are gone afterwards.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert!(left.iter().all(|name| !name.to_string_lossy().starts_with(".bench-recall")), "{left:?}");
}

#[test]
fn perplexity_scores_a_text_file_and_refuses_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("text.txt");
    let words: Vec<&str> = include_str!("../../src/perplexity.txt").split_whitespace().take(250).collect();
    std::fs::write(&text_file, words.join(" ")).unwrap();
    let model = common::small_model();
    let report = json_output(
        bench_in(dir.path())
            .args(["perplexity", "--json", "--context-size", "512", "--text"])
            .arg(&text_file)
            .arg("--model")
            .arg(&model),
    );
    assert!(report["tokens_scored"].as_u64().unwrap() > 250, "{report}");
    assert_eq!(report["chunks"], 1, "{report}");
    assert_eq!(report["quantization"], "Q4_1", "{report}");
    let perplexity = report["perplexity"].as_f64().unwrap();
    assert!(perplexity.is_finite() && perplexity > 1.0, "{report}");

    let missing = dir.path().join("missing.txt");
    let output = bench_in(dir.path()).args(["perplexity", "--text"]).arg(&missing).arg("--model").arg(&model).output();
    assert_bad_input(&output.unwrap(), &["missing.txt"]);
}

#[test]
fn persona_scores_every_reply_in_both_languages() {
    let dir = tempfile::tempdir().unwrap();
    let report = json_output(
        bench_in(dir.path())
            .args(["persona", "--json", "--limit", "3", "--max-tokens", "8", "--model"])
            .arg(common::small_model()),
    );
    let replies = report["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 6);
    assert_eq!(report["english"]["replies"], 3, "{}", report["english"]);
    assert_eq!(report["french"]["replies"], 3, "{}", report["french"]);
    for summary in [&report["english"], &report["french"], &report["all"]] {
        for share in ["recites_persona", "in_language", "empty_or_cut", "within_length", "emotion_agrees", "real_words"]
        {
            let value = summary[share].as_f64().unwrap_or_else(|| panic!("{share} in {summary}"));
            assert!((0.0..=1.0).contains(&value), "{share} in {summary}");
        }
        assert!(summary["ttft_ms"]["p50"].as_f64().unwrap() > 0.0, "{summary}");
    }
    assert!(report["missing_word_lists"].as_array().unwrap().is_empty(), "the test set-up installs both lists");
    for reply in replies {
        assert!(!reply["message"].as_str().unwrap().is_empty(), "{reply}");
        assert!(reply["words"].as_u64() >= reply["known_words"].as_u64(), "{reply}");
    }
    // 8 tokens cut nearly every reply: the figure sees it.
    assert!(report["all"]["empty_or_cut"].as_f64().unwrap() > 0.0, "{}", report["all"]);
}
