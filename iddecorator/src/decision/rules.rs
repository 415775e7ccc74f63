//! Which value each annotation site should carry: the rule table of the README's "How identity is proven", as data in, data
//! out.
use super::observe::Observed;

/// Facts about a CREATE or UPDATE that decide the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub update: bool,
    /// The incoming object has a controller ownerReference (`controller: true`) whose kind the
    /// authenticated username is a trusted controller for.
    pub manages_owner: bool,
    /// UPDATE only: what runs (templates, or a Pod's spec) differs from the old object.
    pub runnable_changed: bool,
}

/// How the desired annotation values are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Every site gets the (mapped) requester.
    Submitter,
    /// A trusted controller made this object from an owner we stamped: keep what it wrote,
    /// filling gaps as [`keep_incoming`] documents.
    KeepIncoming,
    /// An UPDATE that changes nothing that runs: every site gets the old object's value back
    /// (absent stays absent), so nobody can relabel someone else's workload.
    RestoreOld,
}

/// The rule table. A trusted controller is trusted only for objects owned by a kind it
/// manages; anywhere else it is an ordinary requester.
pub fn choose(f: Facts) -> Rule {
    if f.manages_owner {
        Rule::KeepIncoming
    } else if !f.update || f.runnable_changed {
        Rule::Submitter
    } else {
        Rule::RestoreOld
    }
}

/// What each site of `new` should carry under `rule`, as (user, stamp) pairs aligned with
/// `new.sites`. `signed` is the submitter's stamp (`None` without a stamp key).
///
/// Stamps move with the user value they prove and are computed only for the submitter: a
/// trusted controller's stamp is kept exactly as it copied it (filled from where its user
/// value is filled from), never signed here, so a value written while iddecorator was not
/// looking never gains a valid stamp by passing through a controller.
pub fn desired(
    rule: Rule,
    submitter: Option<&str>,
    signed: Option<&str>,
    new: &Observed,
    old: Option<&Observed>,
) -> Vec<Site> {
    let owned = |v: Option<&str>| v.map(str::to_owned);
    match rule {
        Rule::Submitter => new
            .sites
            .iter()
            .map(|_| (owned(submitter), owned(signed)))
            .collect(),
        Rule::KeepIncoming => keep_incoming(new),
        Rule::RestoreOld => new
            .sites
            .iter()
            .map(|(site, _)| {
                let user = old.and_then(|o| o.value_at(site));
                let stamp = old.and_then(|o| o.stamp_at(site));
                (owned(user), owned(stamp))
            })
            .collect(),
    }
}

/// One site's (user, stamp).
pub type Site = (Option<String>, Option<String>);

/// A trusted controller's values, made consistent:
/// - values it wrote are kept as written, even where they differ from each other (it copied
///   them from owners we stamped, and a controller is not second-guessed);
/// - a site it left empty gets the object's own metadata value, or, when that is absent too,
///   the value the templates agree on (a Job made by the cronjob-controller carries the user
///   only in its pod template);
/// - with no value anywhere (an owner created before iddecorator was installed) nothing is
///   added: token-service refuses unannotated pods with a clear reason, which is better than
///   inventing an owner here.
///
/// Applying the result again gives the same result, which `/validate` relies on.
///
/// Stamps follow: a site with a user keeps its own stamp (absent stays absent); a site filled
/// with a user takes the stamp of the site that user came from (the object's own metadata, or
/// the first template); a site left without a user has none.
fn keep_incoming(new: &Observed) -> Vec<Site> {
    let stamp = |i: usize| new.stamps.get(i).cloned().flatten();
    let own = new
        .sites
        .first()
        .and_then(|(_, v)| v.clone())
        .map(|v| (v, stamp(0)));
    let fill = own.or_else(|| {
        let mut template_values = new
            .sites
            .iter()
            .enumerate()
            .skip(1)
            .filter_map(|(i, (_, v))| v.as_deref().map(|v| (i, v)));
        let (first_at, first) = template_values.next()?;
        template_values
            .all(|(_, v)| v == first)
            .then(|| (first.to_owned(), stamp(first_at)))
    });
    new.sites
        .iter()
        .enumerate()
        .map(|(i, (_, v))| match (v, &fill) {
            (Some(v), _) => (Some(v.clone()), stamp(i)),
            (None, Some((user, s))) => (Some(user.clone()), s.clone()),
            // A stamp means nothing without the user it signs: never kept alone.
            (None, None) => (None, None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pointer::Path;

    fn obs(values: &[Option<&str>]) -> Observed {
        Observed {
            stamps: vec![None; values.len()],
            sites: values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let site = if i == 0 {
                        Path::root()
                    } else {
                        Path::root().keys(&["spec", &format!("t{i}")])
                    };
                    (site, v.map(str::to_owned))
                })
                .collect(),
        }
    }

    fn facts(update: bool, manages_owner: bool, changed: bool) -> Facts {
        Facts {
            update,
            manages_owner,
            runnable_changed: changed,
        }
    }

    #[test]
    fn rule_table() {
        use Rule::*;
        assert_eq!(choose(facts(false, false, false)), Submitter);
        assert_eq!(choose(facts(false, true, false)), KeepIncoming);
        assert_eq!(choose(facts(true, false, true)), Submitter);
        assert_eq!(choose(facts(true, false, false)), RestoreOld);
        assert_eq!(choose(facts(true, true, true)), KeepIncoming);
        assert_eq!(choose(facts(true, true, false)), KeepIncoming);
    }

    fn strings(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|s| s.map(str::to_owned)).collect()
    }

    /// The users of `desired` (the tests' sites carry no stamps).
    fn users(
        rule: Rule,
        submitter: Option<&str>,
        new: &Observed,
        old: Option<&Observed>,
    ) -> Vec<Option<String>> {
        desired(rule, submitter, None, new, old)
            .into_iter()
            .map(|(user, _)| user)
            .collect()
    }

    #[test]
    fn keep_incoming_fills_from_metadata_then_from_agreeing_templates() {
        let k = |v: &[Option<&str>]| users(Rule::KeepIncoming, None, &obs(v), None);
        assert_eq!(
            k(&[Some("a"), None, Some("b")]),
            strings(&[Some("a"), Some("a"), Some("b")])
        );
        assert_eq!(
            k(&[None, Some("a"), None]),
            strings(&[Some("a"), Some("a"), Some("a")])
        );
        // Templates disagree and metadata has nothing: nothing is invented.
        assert_eq!(
            k(&[None, Some("a"), Some("b"), None]),
            strings(&[None, Some("a"), Some("b"), None])
        );
        // No value anywhere stays unannotated (explicit decision, see keep_incoming).
        assert_eq!(k(&[None]), strings(&[None]));
        assert_eq!(k(&[None, None]), strings(&[None, None]));
    }

    #[test]
    fn keep_incoming_is_idempotent() {
        for v in [
            vec![None, Some("a"), None],
            vec![Some("a"), None, Some("b")],
            vec![None, Some("a"), Some("b")],
        ] {
            let once = users(Rule::KeepIncoming, None, &obs(&v), None);
            let again: Vec<Option<&str>> = once.iter().map(|s| s.as_deref()).collect();
            assert_eq!(users(Rule::KeepIncoming, None, &obs(&again), None), once);
        }
    }

    #[test]
    fn restore_old_matches_sites_by_path() {
        let new = obs(&[Some("mallory"), Some("mallory"), None]);
        let old = obs(&[Some("alice"), None]);
        assert_eq!(
            users(Rule::RestoreOld, Some("bob"), &new, Some(&old)),
            strings(&[Some("alice"), None, None])
        );
        assert_eq!(
            users(Rule::Submitter, Some("bob"), &new, Some(&old)),
            strings(&[Some("bob"), Some("bob"), Some("bob")])
        );
    }
}
