package projections

import (
	"fmt"

	"github.com/heed/heed/ledger"
)

// text names a decision sentence that depends only on the rules and on the
// query's channel and purpose. Such sentences are formatted once per state
// instead of once per decision: formatting them was most of what a
// decision allocated, and so of the garbage collections a busy decider
// paid for.
type text int

const (
	txContractInGrace text = iota
	txNoContract
	txWithdrawn
	txMarketingAgreed
	txMarketingNever
	txServiceInGrace
	txServiceAgreed
	txCooldown
	txRegionBurst
	nTexts
)

// texts holds every text for every channel and purpose, in English and
// Chinese, indexed by text, combo and language.
type texts [nTexts][combos][2]string

// newTexts formats the texts under cfg.
func newTexts(cfg *Config) *texts {
	var t texts
	grace, cool, burst := cfg.ServiceBasis.GraceDays, cfg.ComplaintCooldown.Days, cfg.RegionBurst.MaxPerHour
	for _, ch := range ledger.Channels {
		for _, pu := range ledger.Purposes {
			c, ok := combo(ch, pu)
			if !ok {
				continue
			}
			zc, zp := zhChannel(ch), zhPurpose(pu)
			t[txContractInGrace][c] = [2]string{
				fmt.Sprintf("The reminder is about a contract that expired less than %d days ago.", grace),
				fmt.Sprintf("提醒所涉合同到期未满%d天。", grace)}
			t[txNoContract][c] = [2]string{
				fmt.Sprintf("The reminder names no contract of the business with this customer that is active or expired less than %d days ago.", grace),
				fmt.Sprintf("提醒所涉合同不是本企业与该客户的有效合同（或到期未满%d天的合同）。", grace)}
			t[txWithdrawn][c] = [2]string{
				fmt.Sprintf("The customer asked not to be contacted by %s for %s, and has not agreed again since.", ch, pu),
				fmt.Sprintf("客户已要求不再通过%s进行%s联系，此后未再同意。", zc, zp)}
			t[txMarketingAgreed][c] = [2]string{
				fmt.Sprintf("The customer explicitly agreed to marketing by %s.", ch),
				fmt.Sprintf("客户明确同意通过%s接收营销信息。", zc)}
			t[txMarketingNever][c] = [2]string{
				fmt.Sprintf("The customer never agreed to marketing by %s.", ch),
				fmt.Sprintf("客户从未同意通过%s接收营销信息。", zc)}
			t[txServiceInGrace][c] = [2]string{
				fmt.Sprintf("The customer's contract expired less than %d days ago: renewal notices are allowed.", grace),
				fmt.Sprintf("客户的合同到期未满%d天，可发送续保提醒。", grace)}
			t[txServiceAgreed][c] = [2]string{
				fmt.Sprintf("The customer agreed to service messages by %s.", ch),
				fmt.Sprintf("客户同意通过%s接收服务信息。", zc)}
			t[txCooldown][c] = [2]string{
				fmt.Sprintf("The customer complained about the business less than %d days ago.", cool),
				fmt.Sprintf("客户在%d天内投诉过本企业。", cool)}
			t[txRegionBurst][c] = [2]string{
				fmt.Sprintf("This line already made %d contacts to the customer's area this hour; no more until the hour ends.", burst),
				fmt.Sprintf("该线路本小时已向客户所在地区联系%d次，本小时内不得再联系。", burst)}
		}
	}
	return &t
}
