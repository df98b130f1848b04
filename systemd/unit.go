// Package systemd renders the systemd units and environment files that run
// etcdops under systemd, and installs them atomically.
package systemd

import (
	"bytes"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/template"
)

// UnitDir is where units are installed, below the root given to Install.
const UnitDir = "/etc/systemd/system"

// File is one file to install: where it goes on the target system, with
// which permissions and content.
type File struct {
	Path string // absolute path on the target system
	Mode fs.FileMode
	Data []byte
}

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"join": strings.Join,
}).ParseFS(templateFS, "templates/*.tmpl"))

// render executes the template named like its file in templates/.
func render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// Print writes files to w as a review copy: each file preceded by a comment
// line naming the path it would be installed to, and separated by a blank line.
func Print(w io.Writer, files []File) error {
	for i, f := range files {
		sep := "\n"
		if i == 0 {
			sep = ""
		}
		if _, err := fmt.Fprintf(w, "%s# %s\n%s", sep, f.Path, f.Data); err != nil {
			return err
		}
	}
	return nil
}
