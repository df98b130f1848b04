package backup

import (
	"errors"
	"fmt"
)

// Field names an input of a backup operation. The command line maps each to its flag or argument.
type Field string

// The inputs an InputError can be about.
const (
	FieldBucket       Field = "bucket URL"       // the bucket a Store opens
	FieldTag          Field = "tag"              // SaveConfig.Tag, or the member name it defaults to
	FieldMember       Field = "member"           // SaveConfig.Member
	FieldSnapshot     Field = "snapshot"         // a snapshot name or "latest"
	FieldDestination  Field = "destination"      // Fetch's dst
	FieldIdentity     Field = "age identity"     // the identities that decrypt a snapshot
	FieldRecipient    Field = "age recipient"    // a public key to encrypt to
	FieldSpoolDir     Field = "spool dir"        // VerifyConfig.SpoolDir
	FieldKeepLast     Field = "keep last"        // Policy.Last
	FieldKeepHourly   Field = "keep hourly"      // Policy.Hourly
	FieldKeepDaily    Field = "keep daily"       // Policy.Daily
	FieldKeepWeekly   Field = "keep weekly"      // Policy.Weekly
	FieldKeepMonthly  Field = "keep monthly"     // Policy.Monthly
	FieldKeepWithin   Field = "keep within"      // Policy.Within
	FieldPolicy       Field = "retention policy" // the policy as a whole
	FieldStallTimeout Field = "stall timeout"    // WithStallTimeout's duration
)

// Errors to tell by errors.Is: the reasons an InputError wraps, and ErrNameTaken.
var (
	// ErrExists: Fetch's destination exists and replacing it was not asked for.
	ErrExists = errors.New("file exists (replace it with force)")
	// ErrNeedsIdentity: the snapshot is encrypted and no identity was given.
	ErrNeedsIdentity = errors.New("snapshot is encrypted: an age identity is needed to decrypt it")
	// ErrNameTaken: a snapshot (or its manifest) of that name exists, written by another save; it
	// was left as it was. Not bad input: the same command a moment later picks another name.
	ErrNameTaken = errors.New("a snapshot of this name exists (another save took the same name at the same second)")
	// ErrEmptyPolicy: a policy that would remove every snapshot.
	ErrEmptyPolicy = errors.New("no retention rule given: refusing to remove every snapshot")
)

// InputError is bad input: Field holds Value (empty when there is none to show), which is wrong as Err
// says. Nothing was changed. The command line names Field's flag and exits 2.
type InputError struct {
	Field Field
	Value string
	Err   error
}

func (e *InputError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err)
}

func (e *InputError) Unwrap() error { return e.Err }

func inputErr(field Field, value, format string, args ...any) error {
	return &InputError{Field: field, Value: value, Err: fmt.Errorf(format, args...)}
}
