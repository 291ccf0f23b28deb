; Inno Setup 6 script: a per-user installer for the PyInstaller one-folder build.
;
;   iscc /DAppVersion=0.1.0 /DSourceDir=..\..\dist\infinitetalk-gui /DOutputDir=..\..\dist ^
;        [/DAppURL=https://...] packaging\windows\infinitetalk-gui.iss
;
; Relative paths are relative to this file. Installs into %LOCALAPPDATA%\Programs without
; asking for administrator rights, adds a Start menu entry and an uninstaller (Settings >
; Apps), and offers two opt-in tasks, both unchecked: a desktop shortcut and "Open with"
; entries for portraits and voice clips (file associations are off by default, and even
; when chosen the app only joins the "Open with" list: it never becomes the default
; program for a file type).
;
; Signing (optional): run iscc with /DSignTool=NAME /SNAME="signtool.exe sign ... $f"; the
; installer and the uninstaller are then signed. Sign the two executables in SourceDir
; before compiling. Unsigned, SmartScreen warns on first run (docs/PACKAGING.md).

#define AppName "InfiniteTalk GUI"
#define AppExe "infinitetalk-gui.exe"
#define AppPublisher "InfiniteTalk GUI contributors"
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\infinitetalk-gui"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif

[Setup]
; A fixed AppId ties upgrades and the uninstaller to this app across versions: never change it.
AppId={{5B6C0E52-7A1D-4C8E-9F3B-2E1A6D4C9B70}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher={#AppPublisher}
#ifdef AppURL
AppPublisherURL={#AppURL}
AppSupportURL={#AppURL}
#endif
VersionInfoVersion={#AppVersion}
; Per user: no UAC prompt; {autopf} is %LOCALAPPDATA%\Programs in this mode.
PrivilegesRequired=lowest
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
; Windows 10 or later: what Qt 6 supports.
MinVersion=10.0
OutputDir={#OutputDir}
OutputBaseFilename=infinitetalk-gui-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\infinitetalk-gui.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
WizardStyle=modern
; The bundle is ~400 MB, mostly ffmpeg and Qt: solid LZMA2 roughly halves it.
Compression=lzma2/max
SolidCompression=yes
LZMANumBlockThreads=2
; Only the opt-in "Open with" task touches file associations; this makes Explorer notice.
ChangesAssociations=yes
CloseApplications=yes
RestartApplications=no
#ifdef SignTool
SignTool={#SignTool}
SignedUninstaller=yes
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "openwith"; Description: "Add {#AppName} to ""Open with"" for images and audio files"; GroupDescription: "File associations:"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[InstallDelete]
; An upgrade replaces the whole bundle: files a previous version had must not linger.
Type: filesandordirs; Name: "{app}\_internal"

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; Comment: "Lip-synced talking-head video from a portrait and a voice clip"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; "Open with" (opt-in): a ProgID for the app, listed under each extension's OpenWithProgids.
; HKA is HKCU in a per-user install. Removed again by the uninstaller.
Root: HKA; Subkey: "Software\Classes\InfiniteTalkGUI.Media"; ValueType: string; ValueName: ""; ValueData: "{#AppName} media"; Flags: uninsdeletekey; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\InfiniteTalkGUI.Media\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\{#AppExe},0"; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\InfiniteTalkGUI.Media\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.png\OpenWithProgids"; ValueType: none; ValueName: "InfiniteTalkGUI.Media"; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.jpg\OpenWithProgids"; ValueType: none; ValueName: "InfiniteTalkGUI.Media"; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.jpeg\OpenWithProgids"; ValueType: none; ValueName: "InfiniteTalkGUI.Media"; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.webp\OpenWithProgids"; ValueType: none; ValueName: "InfiniteTalkGUI.Media"; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.wav\OpenWithProgids"; ValueType: none; ValueName: "InfiniteTalkGUI.Media"; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.mp3\OpenWithProgids"; ValueType: none; ValueName: "InfiniteTalkGUI.Media"; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.m4a\OpenWithProgids"; ValueType: none; ValueName: "InfiniteTalkGUI.Media"; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.flac\OpenWithProgids"; ValueType: none; ValueName: "InfiniteTalkGUI.Media"; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.ogg\OpenWithProgids"; ValueType: none; ValueName: "InfiniteTalkGUI.Media"; Flags: uninsdeletevalue; Tasks: openwith

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

; The user's settings, job history and log (%LOCALAPPDATA%\infinitetalk-gui) and the API
; key in the Windows Credential Manager are kept on uninstall, like any app's documents.
