//! One test's share of the bed: the clients, a fresh [`TestId`] and a ledger namespace of its
//! own, set up and torn down the same way by every test that starts a token-service.

use crate::ledger::LedgerNamespace;
use crate::{Bed, TestId};

/// What a token-service test starts from; call [`Fixture::teardown`] at the end.
pub struct Fixture {
    pub bed: Bed,
    pub id: TestId,
    pub ledger: LedgerNamespace,
}

impl Fixture {
    /// Connects to the bed and creates the ledger namespace for a test id starting `prefix`.
    pub async fn new(prefix: &str) -> Fixture {
        let bed = Bed::connect()
            .await
            .expect("the e2e control plane (make e2e-up)");
        let id = TestId::new(prefix);
        let ledger = LedgerNamespace::create(&bed, &id)
            .await
            .expect("a ledger namespace of its own");
        Fixture { bed, id, ledger }
    }

    /// Deletes the test's objects, then drops `running` (the test's token-service, if still
    /// up, so it sees its workloads go), then deletes the ledger namespace.
    pub async fn teardown<S>(&self, running: S) {
        self.id.cleanup(&self.bed.admin).await;
        drop(running);
        self.ledger.delete(&self.bed).await;
    }
}
