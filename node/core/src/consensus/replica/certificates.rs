//! Checking the certificates Malachite is handed (commit, polka, round) against a
//! validator set: every signature, no validator twice, enough power.

use std::collections::HashSet;

use malachite_types::{
    CertificateError, CommitCertificate, NilOrVal, PolkaCertificate, RoundCertificate,
    RoundCertificateType, ValidatorSet as _, VoteType,
};
use xinlian_client::block::verify_precommits;
use xinlian_client::crypto::Signature;

use super::Replica;
use crate::consensus::context::{ConsensusVote, Ctx, Validators, verify, vote_message};
use crate::consensus::ledger::Ledger;
use crate::consensus::wire::certificate_from_malachite;

impl<L: Ledger> Replica<L> {
    // Malachite's resumption takes its own error type, whatever its size.
    #[allow(clippy::result_large_err)]
    pub(super) fn check_commit(
        &self,
        cert: &CommitCertificate<Ctx>,
        vs: &Validators,
    ) -> Result<(), CertificateError<Ctx>> {
        let ours = certificate_from_malachite(cert, vs)
            .ok_or(CertificateError::VerificationError(None))?;
        verify_precommits(
            &self.c.chain,
            ours.height,
            ours.round,
            &ours.block,
            &ours.signatures,
            &vs.set,
        )
        .map_err(|_| CertificateError::VerificationError(None))
    }

    /// Sums the power of distinct validators whose signatures over `votes` hold.
    // Malachite's resumption takes its own error type, whatever its size.
    #[allow(clippy::result_large_err)]
    fn signed_power<'a>(
        &self,
        vs: &Validators,
        votes: impl Iterator<Item = (ConsensusVote, &'a Signature)>,
    ) -> Result<u64, CertificateError<Ctx>> {
        let mut seen = HashSet::new();
        let mut power: u64 = 0;
        for (vote, sig) in votes {
            let Some(v) = vs.get_by_address(&vote.validator) else {
                return Err(CertificateError::UnknownValidator(vote.validator));
            };
            if !seen.insert(vote.validator) {
                return Err(CertificateError::DuplicateVote(vote.validator));
            }
            if !verify(&vote.validator.0, &vote_message(&self.c.chain, &vote), sig) {
                return Err(CertificateError::VerificationError(None));
            }
            power = power.saturating_add(v.power);
        }
        Ok(power)
    }

    // Malachite's resumption takes its own error type, whatever its size.
    #[allow(clippy::result_large_err)]
    pub(super) fn check_polka(
        &self,
        cert: &PolkaCertificate<Ctx>,
        vs: &Validators,
    ) -> Result<(), CertificateError<Ctx>> {
        let votes = cert.polka_signatures.iter().map(|s| {
            (
                ConsensusVote {
                    kind: VoteType::Prevote,
                    height: cert.height,
                    round: cert.round,
                    value: NilOrVal::Val(cert.value_id),
                    validator: s.address,
                },
                &s.signature,
            )
        });
        let signed = self.signed_power(vs, votes)?;
        if !vs.set.is_quorum(signed) {
            return Err(CertificateError::NotEnoughVotingPower {
                signed,
                total: vs.set.total_power(),
                expected: vs.set.total_power() * 2 / 3 + 1,
            });
        }
        Ok(())
    }

    // Malachite's resumption takes its own error type, whatever its size.
    #[allow(clippy::result_large_err)]
    pub(super) fn check_round(
        &self,
        cert: &RoundCertificate<Ctx>,
        vs: &Validators,
    ) -> Result<(), CertificateError<Ctx>> {
        if cert.cert_type == RoundCertificateType::Precommit
            && let Some(s) = cert
                .round_signatures
                .iter()
                .find(|s| s.vote_type != VoteType::Precommit)
        {
            return Err(CertificateError::InvalidVoteType(s.address));
        }
        let votes = cert.round_signatures.iter().map(|s| {
            (
                ConsensusVote {
                    kind: s.vote_type,
                    height: cert.height,
                    round: cert.round,
                    value: s.value_id,
                    validator: s.address,
                },
                &s.signature,
            )
        });
        let signed = self.signed_power(vs, votes)?;
        let total = vs.set.total_power();
        let enough = match cert.cert_type {
            RoundCertificateType::Precommit => vs.set.is_quorum(signed),
            // f+1: more than a third.
            RoundCertificateType::Skip => u128::from(signed) * 3 > u128::from(total),
        };
        if !enough {
            return Err(CertificateError::NotEnoughVotingPower {
                signed,
                total,
                expected: total / 3 + 1,
            });
        }
        Ok(())
    }
}
